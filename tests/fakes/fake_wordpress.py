#!/usr/bin/python3
"""A local fake of the WordPress REST API (wp/v2) for prakat's tests, on 127.0.0.1.

It shares its HTTP server, request log, faults and control API with the Facebook and LINE fakes
(FakeServer in fake_platforms.py); this file only adds what WordPress does.  Python 3 stdlib only.

The model
---------
One site.  The REST base is http://127.0.0.1:PORT/wp-json/wp/v2; the public addresses it hands out
(a post's `link`, a file's `source_url`) are under `site` (default https://bokaeo.go.th), as a real
site behind its own domain would give them.
    GET  users/me[?context=edit]                 the logged-in user (401 rest_not_logged_in without a login)
    GET  types/post
    GET  posts[?slug=a,b&status=any|publish|draft&context=edit&search=&per_page=]   POST posts
    GET  posts/ID   POST posts/ID (update)   DELETE posts/ID[?force=true]
    POST media (the file as the body, Content-Disposition: attachment; filename=..., Content-Type)
    GET  media/ID   DELETE media/ID?force=true (without force: 501 rest_trash_not_supported)
    GET  categories[?search=&per_page=]   POST categories {name} (400 term_exists with data.term_id)
Login: HTTP Basic with `user` and an application password (`password`); as in WordPress, blanks in
the password do not count.  A wrong one gives 401 incorrect_password, a missing one 401
rest_not_logged_in (or 401 rest_cannot_create on a write).  Errors are WordPress's envelope
{"code", "message", "data": {"status"}}; an unknown route is 404 rest_no_route.  Slugs are made
unique the way WordPress does (slug-2, slug-3 ...); names of terms come back HTML-escaped; the raw
title and content only with context=edit.

Faults (fake_platforms.py explains matching and counting): 500_after_create (the request is executed,
then answered with WordPress's "critical error" 500), drop_after_accept, timeout,
timeout_after_create, html_502, status, and expired_token (401 incorrect_password, nothing executed).
`revoke_password()` (or POST /_fake/config {"password": "new"}) makes the current password wrong.

How tests use it
----------------
    wp = FakeWordPress(user="prakat", password="abcd efgh ...")
    site = wp.start()          # http://127.0.0.1:PORT  -> wordpress_url
    wp.add_fault("POST /wp-json/wp/v2/posts", "500_after_create")
    wp.posts_with_slug("id"), with wp.lock: wp.posts, wp.media, wp.categories
From a shell: python3 tests/fakes/fake_wordpress.py --port 0 --user prakat --password-file FILE
prints FAKE_WORDPRESS_URL= and FAKE_WORDPRESS_CONTROL=; /_fake/state shows posts, media, categories.
"""

import argparse
import base64
import hashlib
import html
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_platforms import FAULT_KINDS, FakeServer, Response  # noqa: E402

REST = "/wp-json/wp/v2"
POST_STATUSES = ("publish", "future", "draft", "pending", "private")
CRITICAL = "<p>There has been a critical error on this website.</p><p><a href=\"https://wordpress.org/" \
           "documentation/article/faq-troubleshooting/\">Learn more about troubleshooting WordPress.</a></p>"


class WpError(Exception):
    def __init__(self, status, code, message, **data):
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data


def sanitize_title(text):
    """WordPress's sanitize_title_with_dashes(), for ASCII."""
    s = re.sub(r"<[^>]*>", "", text).lower()
    s = re.sub(r"[\s.]+", "-", s)
    s = re.sub(r"[^a-z0-9_-]", "", s)
    return re.sub(r"-+", "-", s).strip("-")


class FakeWordPress(FakeServer):
    kind = "wordpress"
    fault_kinds = FAULT_KINDS
    defaults = {"user": "prakat", "password": "abcd EFGH ijkl MNOP qrst UVWX", "display_name": "ผู้ดูแลข่าว",
                "site": "https://bokaeo.go.th", "can_publish": True}

    def _reset_platform(self):
        self.posts = {}
        self.media = {}
        self.categories = {1: {"id": 1, "name": "Uncategorized", "slug": "uncategorized", "count": 0}}
        self._next_id = 10

    def _platform_state(self):
        return {"posts": list(self.posts.values()),
                "media": [{k: v for k, v in m.items() if k != "data"} for m in self.media.values()],
                "categories": list(self.categories.values())}

    def revoke_password(self):
        """The application password is revoked: every request with it gets 401 from now on."""
        return self.configure(password="revoked-" + os.urandom(8).hex())

    def _control_routes(self, payload):
        return {("POST", "revoke-password"): self.revoke_password}

    # ---- helpers for tests (take the lock themselves) ----

    def posts_with_slug(self, slug_prefix):
        """Posts (not trashed) whose slug is slug_prefix or slug_prefix-N, as copies."""
        with self.lock:
            return [dict(p) for p in self.posts.values() if p["status"] != "trash" and
                    re.fullmatch(re.escape(slug_prefix) + r"(-\d+)?", p["slug"])]

    def post(self, post_id):
        with self.lock:
            p = self.posts.get(int(post_id))
            return dict(p) if p else None

    # ---- answers ----

    def _json(self, status, value):
        return Response(status, value, {"X-WP-Fake": "1", "Link": "<%s/wp-json/>; rel=\"https://api.w.org/\"" %
                                        self.config["site"]})

    def _error(self, e):
        data = dict(e.data, status=e.status)
        return self._json(e.status, {"code": e.code, "message": e.message, "data": data})

    def _fault_response(self, fault, req):
        if fault.kind == "expired_token":
            return self._error(self._wrong_password())
        return super()._fault_response(fault, req)

    def _after_fault(self, fault, req, resp):
        if fault.kind == "500_after_create":
            return self._json(500, {"code": "internal_server_error", "message": CRITICAL,
                                    "data": {"status": 500}, "additional_errors": []})
        return resp

    def _wrong_password(self):
        return WpError(401, "incorrect_password", "<strong>Error:</strong> The password you entered for the "
                       "username <strong>%s</strong> is incorrect. <a href=\"%s/wp-login.php?action=lostpassword\">"
                       "Lost your password?</a>" % (html.escape(self.config["user"]), self.config["site"]))

    def _new_id(self):
        self._next_id += 1
        return self._next_id

    def _today(self):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.now()))

    # ---- routing ----

    def _route(self, req):
        try:
            if req.json_error is not None:
                raise WpError(400, "rest_invalid_json", "Invalid JSON body passed.")
            if req.path != REST and not req.path.startswith(REST + "/"):
                raise WpError(404, "rest_no_route", "No route was found matching the URL and request method.")
            parts = [s for s in req.path[len(REST):].split("/") if s]
            user = self._login(req)
            status, value = self._dispatch(req, parts, user)
            return self._json(status, value)
        except WpError as e:
            return self._error(e)

    def _login(self, req):
        auth = (req.header("Authorization") or "").split(None, 1)
        if len(auth) != 2 or auth[0].lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(auth[1]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise WpError(401, "incorrect_password", "Invalid Authorization header.")
        if user != self.config["user"]:
            raise WpError(401, "invalid_username", "<strong>Error:</strong> The username <strong>%s</strong> is not "
                          "registered on this site." % html.escape(user))
        def strip(s):
            return re.sub(r"[^A-Za-z0-9]", "", s)
        if strip(password) != strip(self.config["password"]):
            raise self._wrong_password()
        return user

    def _need(self, user, code="rest_forbidden", message="Sorry, you are not allowed to do that."):
        if user is None:
            raise WpError(401, code, message)
        if not self.config["can_publish"]:
            raise WpError(403, code, message)

    def _dispatch(self, req, parts, user):
        m, p = req.method, req.params()
        if parts == ["users", "me"] and m == "GET":
            if user is None:
                raise WpError(401, "rest_not_logged_in", "You are not currently logged in.")
            return 200, {"id": 1, "name": self.config["display_name"], "slug": user, "username": user,
                         "roles": ["editor"] if self.config["can_publish"] else ["subscriber"],
                         "link": "%s/author/%s/" % (self.config["site"], user)}
        if parts == ["types", "post"] and m == "GET":
            return 200, {"slug": "post", "name": "Posts", "rest_base": "posts", "hierarchical": False}
        if parts and parts[0] == "posts":
            return self._posts(req, parts[1:], m, p, user)
        if parts and parts[0] == "media":
            return self._media(req, parts[1:], m, p, user)
        if parts == ["categories"]:
            return self._categories(m, p, user)
        raise WpError(404, "rest_no_route", "No route was found matching the URL and request method.")

    # ---- posts ----

    def _post_json(self, post, edit):
        out = {"id": post["id"], "date": post["date"], "date_gmt": post["date"], "modified": post["modified"],
               "slug": post["slug"], "status": post["status"], "type": "post", "link": self._link(post),
               "title": {"rendered": post["title"]},
               "content": {"rendered": post["content"], "protected": False},
               "author": 1, "featured_media": post["featured_media"], "categories": list(post["categories"]),
               "tags": [], "guid": {"rendered": "%s/?p=%d" % (self.config["site"], post["id"])}}
        if edit:
            out["title"]["raw"] = post["title"]
            out["content"]["raw"] = post["content"]
        return out

    def _link(self, post):
        if post["status"] != "publish":
            return "%s/?p=%d" % (self.config["site"], post["id"])
        return "%s/%s/%s/" % (self.config["site"], post["date"][:10].replace("-", "/"), post["slug"])

    def _unique_slug(self, slug, own_id=None):
        taken = {q["slug"] for q in self.posts.values() if q["id"] != own_id and q["status"] != "trash"}
        if slug not in taken:
            return slug
        n = 2
        while "%s-%d" % (slug, n) in taken:
            n += 1
        return "%s-%d" % (slug, n)

    def _text_field(self, p, key):
        v = p.get(key)
        if isinstance(v, dict):
            v = v.get("raw")
        if v is not None and not isinstance(v, str):
            raise WpError(400, "rest_invalid_param", "Invalid parameter(s): %s" % key,
                          params={key: "%s is not of type string." % key})
        return v

    def _apply_post_fields(self, post, p):
        for key in ("title", "content"):
            v = self._text_field(p, key)
            if v is not None:
                post[key] = v
        if "status" in p:
            if p["status"] not in POST_STATUSES:
                raise WpError(400, "rest_invalid_param", "Invalid parameter(s): status",
                              params={"status": "status is not one of %s." % ", ".join(POST_STATUSES)})
            post["status"] = p["status"]
        if "categories" in p:
            cats = p["categories"]
            if not isinstance(cats, list) or any(not isinstance(c, int) or c not in self.categories for c in cats):
                raise WpError(400, "rest_invalid_param", "Invalid parameter(s): categories",
                              params={"categories": "categories[0] is not a valid term id."})
            post["categories"] = cats
        if "featured_media" in p:
            fm = p["featured_media"]
            if not isinstance(fm, int) or (fm != 0 and fm not in self.media):
                raise WpError(400, "rest_invalid_featured_media", "Invalid featured media ID.")
            post["featured_media"] = fm
        if "slug" in p:
            post["slug"] = self._unique_slug(sanitize_title(str(p["slug"])), post.get("id"))

    def _posts(self, req, rest, m, p, user):
        edit = p.get("context") == "edit"
        if edit:
            self._need(user, "rest_forbidden_context", "Sorry, you are not allowed to edit posts in this post type.")
        if not rest and m == "GET":
            statuses = ["publish"] if p.get("status", "publish") == "publish" else None
            if statuses is None:
                self._need(user, "rest_invalid_param", "Invalid parameter(s): status")
                want = p.get("status")
                statuses = [s for s in POST_STATUSES] if want == "any" else want.split(",")
            slugs = [s for s in p.get("slug", "").split(",") if s]
            search = p.get("search", "").lower()
            found = [q for q in sorted(self.posts.values(), key=lambda q: -q["id"])
                     if q["status"] in statuses and (not slugs or q["slug"] in slugs) and
                     (not search or search in (q["title"] + q["content"]).lower())]
            return 200, [self._post_json(q, edit) for q in found[:int(p.get("per_page", 10))]]
        if not rest and m == "POST":
            self._need(user, "rest_cannot_create", "Sorry, you are not allowed to create posts as this user.")
            now = self._today()
            post = {"id": self._new_id(), "date": now, "modified": now, "slug": "", "status": "draft",
                    "title": "", "content": "", "featured_media": 0, "categories": [1]}
            self._apply_post_fields(post, p)
            if not post["slug"]:
                post["slug"] = self._unique_slug(sanitize_title(post["title"]) or str(post["id"]), post["id"])
            self.posts[post["id"]] = post
            return 201, self._post_json(post, True)
        post = self.posts.get(int(rest[0])) if len(rest) == 1 and rest[0].isdigit() else None
        if post is None:
            raise WpError(404, "rest_post_invalid_id", "Invalid post ID.")
        if m == "GET":
            if post["status"] != "publish":
                self._need(user)
            return 200, self._post_json(post, edit)
        if m in ("POST", "PUT", "PATCH"):
            self._need(user, "rest_cannot_edit", "Sorry, you are not allowed to edit this post.")
            self._apply_post_fields(post, p)
            post["modified"] = self._today()
            return 200, self._post_json(post, True)
        if m == "DELETE":
            self._need(user, "rest_cannot_delete", "Sorry, you are not allowed to delete this post.")
            if p.get("force") in ("true", "1", True):
                del self.posts[post["id"]]
                return 200, {"deleted": True, "previous": self._post_json(post, True)}
            post["status"] = "trash"
            return 200, self._post_json(post, True)
        raise WpError(404, "rest_no_route", "No route was found matching the URL and request method.")

    # ---- media ----

    def _media_json(self, item):
        return {k: v for k, v in item.items() if k not in ("data", "sha256")}

    def _media(self, req, rest, m, p, user):
        if not rest and m == "POST":
            self._need(user, "rest_cannot_create", "Sorry, you are not allowed to upload media as this user.")
            if not req.body:
                raise WpError(400, "rest_upload_no_data", "No data supplied.")
            disposition = req.header("Content-Disposition") or ""
            match = re.search(r'filename\s*=\s*"?([^";]+)"?', disposition)
            if not match:
                raise WpError(400, "rest_upload_no_content_disposition", "No Content-Disposition supplied.")
            if not req.content_type:
                raise WpError(400, "rest_upload_no_content_type", "No Content-Type supplied.")
            name = os.path.basename(match.group(1).strip())
            day = self._today()
            mid = self._new_id()
            item = {"id": mid, "date": day, "slug": sanitize_title(name.rsplit(".", 1)[0]) or str(mid),
                    "status": "inherit", "type": "attachment", "title": {"rendered": name.rsplit(".", 1)[0]},
                    "media_type": "image" if req.content_type.startswith("image/") else "file",
                    "mime_type": req.content_type,
                    "source_url": "%s/wp-content/uploads/%s/%s/%s" % (self.config["site"], day[:4], day[5:7], name),
                    "link": "%s/?attachment_id=%d" % (self.config["site"], mid), "post": None,
                    "size": len(req.body), "sha256": hashlib.sha256(req.body).hexdigest()}
            self.media[mid] = item
            return 201, self._media_json(item)
        item = self.media.get(int(rest[0])) if len(rest) == 1 and rest[0].isdigit() else None
        if item is None:
            raise WpError(404, "rest_post_invalid_id", "Invalid post ID.")
        if m == "GET":
            return 200, self._media_json(item)
        if m == "DELETE":
            self._need(user, "rest_cannot_delete", "Sorry, you are not allowed to delete this post.")
            if p.get("force") not in ("true", "1", True):
                raise WpError(501, "rest_trash_not_supported", "The post does not support trashing. Set "
                              "'force=true' to delete.")
            del self.media[item["id"]]
            return 200, {"deleted": True, "previous": self._media_json(item)}
        raise WpError(404, "rest_no_route", "No route was found matching the URL and request method.")

    # ---- categories ----

    def _category_json(self, c):
        return {"id": c["id"], "count": c["count"], "description": "", "link": "%s/category/%s/" %
                (self.config["site"], c["slug"]), "name": html.escape(c["name"], quote=False), "slug": c["slug"],
                "taxonomy": "category", "parent": 0, "meta": []}

    def _categories(self, m, p, user):
        if m == "GET":
            search = p.get("search", "").lower()
            found = [c for c in self.categories.values() if search in c["name"].lower()]
            return 200, [self._category_json(c) for c in found[:int(p.get("per_page", 10))]]
        if m == "POST":
            self._need(user, "rest_cannot_create", "Sorry, you are not allowed to create terms in this taxonomy.")
            name = p.get("name")
            if not isinstance(name, str) or not name.strip():
                raise WpError(400, "rest_missing_callback_param", "Missing parameter(s): name",
                              params=["name"])
            for c in self.categories.values():
                if c["name"] == name:
                    raise WpError(400, "term_exists", "A term with the name provided already exists with this "
                                  "parent.", term_id=c["id"])
            cid = self._new_id()
            self.categories[cid] = {"id": cid, "name": name, "slug": sanitize_title(name) or str(cid), "count": 0}
            return 201, self._category_json(self.categories[cid])
        raise WpError(404, "rest_no_route", "No route was found matching the URL and request method.")


def main(argv=None):
    ap = argparse.ArgumentParser(description="A fake WordPress REST API for prakat's tests; control API under "
                                             "/_fake/.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user", default="prakat")
    ap.add_argument("--password-file", help="the application password (default: the built-in one)")
    ap.add_argument("--site", default="https://bokaeo.go.th", help="the public address in links")
    args = ap.parse_args(argv)
    kw = {"user": args.user, "site": args.site}
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            kw["password"] = f.read().strip()
    wp = FakeWordPress(host=args.host, port=args.port, **kw)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("FAKE_WORDPRESS_URL=%s\nFAKE_WORDPRESS_CONTROL=%s" % (wp.start(), wp.control_url), flush=True)
    while not stop.wait(0.5):
        pass
    wp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
