"""audit.html (plugins/plugin_utils/audit_report.py) in a real headless Chromium, opened from
disk: no console error or exception, every host and every finding shown, one timeline bar per
certificate coloured by its state, and the tables sort on a real mouse click. The lab's own
report gets the same checks in tests/test_audit.py."""

from __future__ import annotations

import json
import re

import chromium_cdp as cdp
from test_audit_report_unit import full_report
from ansible_collections.incus_access.fleet.plugins.plugin_utils import audit_report as ar


def check_page(browser, report):
    """The checks every audit page passes; returns the page's text."""
    assert browser.errors == [], browser.errors
    text = browser.eval('document.body.innerText')
    for host in report['hosts']:
        assert host in text, host
    shown = browser.eval('Array.from(document.querySelectorAll("#findings-table tbody tr"))'
                         '.map(r => Array.from(r.cells).map(c => c.textContent))')
    want = [[f['severity'], f['host'], f['kind'], f['name'], f['message']] for f in report['findings']]
    assert shown == (want or [['none']])
    bars = browser.eval('Array.from(document.querySelectorAll("#timeline g.bar")).map(g => g.getAttribute("class"))')
    assert len(bars) == len(report['certificates'])
    colours = browser.eval('Array.from(document.querySelectorAll("#timeline g.bar rect")).map(r => getComputedStyle(r).fill)')
    states = {'expired': 'bar critical', 'expiring': 'bar warning', 'ok': 'bar ok'}
    assert bars == [states[c['state']] for c in report['certificates']]
    assert len(set(zip(bars, colours))) == len(set(bars))   # one colour per state
    # findings come first on the page
    order = browser.eval('["findings","timeline","hosts-table","trust-table"].map(i => document.getElementById(i).getBoundingClientRect().top)')
    assert order == sorted(order)
    return text


def test_the_page_in_chromium(tmp_path):
    report = full_report()
    page = tmp_path / 'audit.html'
    page.write_text(ar.render_html(report))
    with cdp.Browser() as b:
        b.open(page)
        check_page(b, report)
        # no request left the page (a file:// page with no network resources)
        assert b.eval('performance.getEntriesByType("resource").length') == 0
        up, down = cdp.check_sorting(b, 'trust-table', 'days left', numeric=True)
        assert up[0] == '5' and down[-1] == '5'
        cdp.check_sorting(b, 'findings-table', 'host')
        cdp.check_sorting(b, 'hosts-table', 'host')
        # sorting by severity orders by rank (critical before warning), not alphabetically
        i = cdp.header_index(b, 'findings-table', 'severity')
        b.click('#findings-table thead th:nth-child(%d)' % (i + 1))
        assert cdp.column(b, 'findings-table', i) == ['critical', 'warning', 'warning']
        assert b.errors == [], b.errors
        shot = b.screenshot(tmp_path / 'audit-fixture.png')
        assert shot.stat().st_size > 10000


def test_a_script_error_would_be_caught(tmp_path):
    """The console check itself: a page with an error is reported (so an empty list means something)."""
    page = tmp_path / 'bad.html'
    page.write_text('<!DOCTYPE html><html><body><script>console.error("boom"); undefinedThing();</script></body></html>')
    with cdp.Browser() as b:
        b.open(page)
        assert any('console.error: boom' in e for e in b.errors) and any('undefinedThing' in e for e in b.errors), b.errors
