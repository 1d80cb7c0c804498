"""A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for the
audit page's tests: open a file:// page, collect console errors and uncaught exceptions,
evaluate JavaScript, click at an element's position with real mouse events, screenshot."""

from __future__ import annotations

import base64
import json
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket

from conftest import lab_missing


def chromium_binary() -> str:
    for name in ('chromium', 'chromium-browser'):
        path = shutil.which(name)
        if path:
            return path
    lab_missing('chromium is not installed (lab/deps.sh test)')
    return ''


class Browser:
    """One headless Chromium with its own profile; use as a context manager."""

    def __init__(self, width=1400, height=1000):
        self.size = (width, height)
        self.errors: list[str] = []
        self._id = 0

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix='audit-chromium-')
        self.proc = subprocess.Popen(
            [chromium_binary(), '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions',
             '--remote-debugging-port=0', '--user-data-dir=' + self.profile, '--window-size=%d,%d' % self.size, 'about:blank'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = pathlib.Path(self.profile) / 'DevToolsActivePort'
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError('chromium did not start its DevTools endpoint (rc %s)' % self.proc.poll())
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen('http://127.0.0.1:%d/json/list' % port, timeout=10))
        page = [t for t in targets if t['type'] == 'page'][0]
        self.ws = websocket.create_connection(page['webSocketDebuggerUrl'], timeout=30, suppress_origin=True)
        for domain in ('Page', 'Runtime', 'Log'):
            self.call(domain + '.enable')
        return self

    def __exit__(self, *exc):
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)

    def _event(self, msg):
        method, p = msg.get('method'), msg.get('params', {})
        if method == 'Runtime.exceptionThrown':
            d = p['exceptionDetails']
            self.errors.append('exception: %s' % (d.get('exception', {}).get('description') or d.get('text')))
        elif method == 'Runtime.consoleAPICalled' and p['type'] in ('error', 'assert'):
            self.errors.append('console.%s: %s' % (p['type'], ' '.join(str(a.get('value', a.get('description'))) for a in p['args'])))
        elif method == 'Log.entryAdded' and p['entry']['level'] == 'error':
            self.errors.append('log: %s %s' % (p['entry'].get('text'), p['entry'].get('url', '')))

    def call(self, method, wait_event=None, **params):
        """Sends one command; returns its result (after wait_event, when given, has arrived)."""
        self._id += 1
        my = self._id
        self.ws.send(json.dumps({'id': my, 'method': method, 'params': params}))
        result, seen = None, wait_event is None
        while result is None or not seen:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == my:
                if 'error' in msg:
                    raise AssertionError('%s: %s' % (method, msg['error']))
                result = msg['result']
            elif msg.get('method') == wait_event:
                seen = True
            else:
                self._event(msg)
        return result

    def open(self, path: pathlib.Path):
        self.call('Page.navigate', wait_event='Page.loadEventFired', url=path.resolve().as_uri())
        self.eval('1')   # drain the events the load produced

    def eval(self, expression: str):
        res = self.call('Runtime.evaluate', expression=expression, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in res:
            raise AssertionError('JavaScript failed: %s' % res['exceptionDetails'])
        return res['result'].get('value')

    def click(self, selector: str):
        """A real mouse click (pressed and released) in the middle of the element."""
        box = self.eval('(function(){var e=document.querySelector(%s);e.scrollIntoView({block:"center"});'
                        'var r=e.getBoundingClientRect();return [r.left+r.width/2,r.top+r.height/2];})()' % json.dumps(selector))
        for kind in ('mousePressed', 'mouseReleased'):
            self.call('Input.dispatchMouseEvent', type=kind, x=box[0], y=box[1], button='left', clickCount=1)

    def screenshot(self, path: pathlib.Path):
        height = self.eval('document.documentElement.scrollHeight')
        self.call('Emulation.setDeviceMetricsOverride', width=self.size[0], height=min(int(height), 8000),
                  deviceScaleFactor=1, mobile=False)
        data = self.call('Page.captureScreenshot', format='png')['data']
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


# The checks both the fixture page and the lab's page get.
def column(browser, table_id, index):
    return browser.eval('Array.from(document.querySelectorAll("#%s tbody tr")).map(r => r.cells[%d].textContent.trim())'
                        % (table_id, index))


def header_index(browser, table_id, name):
    heads = browser.eval('Array.from(document.querySelectorAll("#%s thead th")).map(h => h.textContent.trim())' % table_id)
    return heads.index(name)


def check_sorting(browser, table_id, name, numeric=False):
    """Clicking a header sorts its table ascending, clicking again descending (real mouse events)."""
    i = header_index(browser, table_id, name)
    sel = '#%s thead th:nth-child(%d)' % (table_id, i + 1)
    key = (lambda v: float(v) if v else float('inf')) if numeric else str.lower
    browser.click(sel)
    up = column(browser, table_id, i)
    assert browser.eval('document.querySelector(%s).getAttribute("aria-sort")' % json.dumps(sel)) == 'ascending'
    browser.click(sel)
    down = column(browser, table_id, i)
    assert browser.eval('document.querySelector(%s).getAttribute("aria-sort")' % json.dumps(sel)) == 'descending'
    values = [v for v in up if v != '']
    assert values == sorted(values, key=key), up
    assert [v for v in down if v != ''] == list(reversed(values)), down
    return up, down


def evidence_dir() -> pathlib.Path:
    """Where test artifacts that stay live (conftest's LOG_DIR)."""
    from conftest import LOG_DIR
    LOG_DIR.mkdir(exist_ok=True)
    return LOG_DIR
