#!/usr/bin/python3
"""Loads a page in headless Chromium and waits for its title to settle.

    browser_check.py CHROMIUM URL SECONDS [EXPRESSION]

Starts CHROMIUM headless on URL with a throw-away profile (and HOME), in
a process group of its own, and asks it over the DevTools protocol (a WebSocket on
127.0.0.1, through Debian's python3-websockets) for document.title until
the title no longer says "pending" (or, given EXPRESSION, until that
JavaScript expression is true) or SECONDS have passed.  Prints one JSON
object: the title, the page's text, and whether the browser's whole process
group was gone at the end.  Used by t/browser.t.
"""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from websockets.legacy.client import connect


def devtools_port(profile, deadline):
    """The port Chromium picked, from the file it writes into the profile."""
    path = os.path.join(profile, "DevToolsActivePort")
    while time.monotonic() < deadline:
        try:
            with open(path) as fh:
                port = fh.readline().strip()
            if port.isdigit():
                return int(port)
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("no DevToolsActivePort from the browser")


def page_socket(port, url, deadline):
    """The DevTools WebSocket URL of the tab showing url."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        try:
            with opener.open("http://127.0.0.1:%d/json/list" % port,
                             timeout=5) as resp:
                for target in json.load(resp):
                    if (target.get("type") == "page"
                            and target.get("url", "").startswith(url)):
                        return target["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the browser shows no tab with " + url)


async def watch(ws_url, deadline, until=None):
    out = {"title": None, "text": None}
    async with connect(ws_url, max_size=None, ping_interval=None,
                       open_timeout=10, close_timeout=5) as ws:
        ids = 0

        async def evaluate(expr):
            nonlocal ids
            ids += 1
            await ws.send(json.dumps({"id": ids, "method": "Runtime.evaluate",
                                      "params": {"expression": expr,
                                                 "returnByValue": True}}))
            while True:
                left = deadline - time.monotonic()
                reply = json.loads(await asyncio.wait_for(ws.recv(),
                                                          max(left, 0.1)))
                if reply.get("id") == ids:
                    return reply.get("result", {}).get("result", {}).get("value")

        while time.monotonic() < deadline:
            out["title"] = await evaluate("document.title")
            if until is not None:
                if await evaluate("!!(%s)" % until):
                    out["until"] = True
                    break
            elif out["title"] and "pending" not in out["title"]:
                break
            await asyncio.sleep(0.1)
        out["text"] = await evaluate("document.body ? document.body.innerText : ''")
    return out


def strays(profile):
    """Processes outside the group that name our profile: Chromium's crash
    handlers, which start sessions of their own (their database is under
    HOME, which is the profile).  Zombies do not count."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                cmdline = fh.read()
            with open("/proc/%s/stat" % pid) as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if profile.encode() in cmdline and state != "Z":
            found.append(int(pid))
    return found


def end_strays(profile):
    """Waits a moment for them to go (they do when the browser is gone),
    then ends those left by their pid; true if none is left."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        end = time.monotonic() + 5
        while time.monotonic() < end:
            left = strays(profile)
            if not left:
                return True
            if sig:
                for pid in left:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                sig = None
            time.sleep(0.1)
    return not strays(profile)


def end_group(proc):
    """Ends the browser and every process it started, by its process group
    (whose id is its pid); true if none is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + 5
        while time.monotonic() < end:
            proc.poll()             # reaps the group leader
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
    proc.poll()
    try:
        os.killpg(proc.pid, 0)
        return False
    except ProcessLookupError:
        return True


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    chromium, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    until = sys.argv[4] if len(sys.argv) == 5 else None
    deadline = time.monotonic() + seconds
    # Ended from outside: still end the browser (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    profile = tempfile.mkdtemp(prefix="rproxy-chromium-")
    out = {}
    proc = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--mute-audio",
         "--no-proxy-server", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "--user-data-dir=" + profile, url],
        # Nothing written to the user's home (~/.config, ~/.cache) or left
        # in /tmp (its org.chromium.Chromium.* dirs) either.
        env=dict(os.environ, HOME=profile, TMPDIR=profile,
                 XDG_CONFIG_HOME=os.path.join(profile, ".config"),
                 XDG_CACHE_HOME=os.path.join(profile, ".cache")),
        stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
        start_new_session=True)   # its own process group: we end all of it
    try:
        port = devtools_port(profile, deadline)
        out.update(asyncio.run(watch(page_socket(port, url, deadline),
                                     deadline, until)))
    except Exception as e:  # reported, for the test to show
        out["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        out["browser_gone"] = end_group(proc) & end_strays(profile)
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
