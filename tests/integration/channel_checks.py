"""What the suites of the platform channels (Facebook, WordPress, ...) check alike: a secret file
replaced the way a person would, one channel's lines in a receipt, and no secret in any file."""

import os
import re


def write_secret(path, secret, mode=0o600):
    """Writes a token or password file whole: a new file with its mode, renamed over the old one."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(secret + "\n")
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def receipt_section(text, channel, thai=False):
    """The receipt's lines about `channel`: from its "- channel: state" line to the next channel's."""
    english = text.split("Publication receipt", 1)
    part = english[0] if thai else english[-1]
    m = re.search(r"^- %s: .*?(?=^- |\Z|^\S)" % re.escape(channel), part, re.M | re.S)
    return m.group(0) if m else ""


def files_holding(needles, logs, roots):
    """The files among `logs` and every file below `roots` that contain one of the byte strings `needles`."""
    files = list(logs)
    for root in roots:
        for dirpath, _, names in os.walk(root):
            files += [os.path.join(dirpath, n) for n in names]
    found = set()
    for path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if any(n in data for n in needles):
            found.add(path)
    return sorted(found)
