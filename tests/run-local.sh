#!/bin/sh
# `make run`: starts prakatd on conf/run.conf with everything under run/, and a small web server
# for the generated site on http://127.0.0.1:8080/.  Ctrl-C stops both.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p run/spool/incoming run/site
cat <<MSG

  prakat is starting (Ctrl-C stops it).

  Drop an announcement here:   $top/run/spool/incoming/
      for example:  cp conf/examples/*.txt run/spool/incoming/
  The news site:               http://127.0.0.1:8080/   (files in $top/run/site/)
  Receipts:                    $top/run/spool/published/
  Problems explained:          $top/run/spool/rejected/
  What is queued:              $build/prakat --config conf/run.conf list --all
  Is it healthy:               $build/prakat --config conf/run.conf status

MSG
server=""
if command -v python3 >/dev/null 2>&1; then
        python3 -m http.server 8080 --bind 127.0.0.1 --directory run/site >run/http.log 2>&1 &
        server=$!
        trap 'kill $server 2>/dev/null' EXIT INT TERM
fi
"$build/prakatd" --config conf/run.conf
