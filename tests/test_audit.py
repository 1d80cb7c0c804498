"""playbooks/audit.yaml (incus_access.fleet.audit) against the real lab (issue 22): both Incus
hosts over real SSH, their instances through the gateway.

What it proves:
- the converged lab has no finding (its admins are incus_access_audit_admins in the lab
  inventory); the run and a --check run are changed=0 on every host and both write
  audit.json, audit.html and audit.prom, the html shown in real Chromium (screenshot kept
  in the evidence directory), the prom read by prometheus_client's parser;
- an unmanaged entry, an entry expiring in 5 days, an expired libvirt certificate and a
  `restricted: false` CI client each show up as the finding they are, and nothing else does;
- an unreachable host is named, the others are still reported;
- --limit and --tags read only what they select;
- unknown admin names or an unwritable audit dir fail with one message before any host is read.

Each test holds the trust store and libvirt PKI locks and puts back what it changed.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import tempfile

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

import chromium_cdp as cdp
from conftest import LAB_INVENTORY, FileSnapshot, make_client_cert, run_playbook, unique_name
from test_audit_html_chromium import check_page

PLAYBOOK = 'playbooks/audit.yaml'
HOSTS = ('lab-host1', 'lab-host2')
LIBVIRT_PKI_LOCK = pathlib.Path(tempfile.gettempdir()) / 'incus-access-lab-libvirt-pki.lock'
T_TRUST = 'Read the trust store (every entry, the projects, which store it is)'


@pytest.fixture
def lab(trust_stores):
    """The trust stores (held and restored by trust_stores) and the lab hosts' PKI files,
    held with the libvirt tests' lock and put back byte for byte."""
    state = pathlib.Path(os.environ.get('LAB_STATE', '/var/lib/incus-access-lab'))
    with open(LIBVIRT_PKI_LOCK, 'a+') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        snap = FileSnapshot(*(state / h / 'pki' for h in ('host1', 'host2')))
        try:
            yield {'stores': trust_stores, 'state': state}
        finally:
            snap.restore()


def audit(out: pathlib.Path, *args, extra=None, **kw):
    return run_playbook(PLAYBOOK, *args, extra_vars={'incus_access_audit_dir': str(out), **(extra or {})}, **kw)


def read(out: pathlib.Path) -> dict:
    return json.loads((out / 'audit.json').read_text())


def kinds(report):
    return sorted((f['host'], f['kind'], f['name']) for f in report['findings'])


def assert_read_only(run, hosts=HOSTS):
    assert run.rc == 0, run
    for h in hosts:
        assert run.recap[h]['changed'] == 0 and run.recap[h]['failed'] == 0, run


def show_in_chromium(out: pathlib.Path, report: dict, name: str):
    with cdp.Browser() as b:
        b.open(out / 'audit.html')
        text = check_page(b, report)
        cdp.check_sorting(b, 'trust-table', 'name')
        cdp.check_sorting(b, 'trust-table', 'days left', numeric=True)
        shot = b.screenshot(cdp.evidence_dir() / f'{name}-{os.getpid()}.png')
        shutil.copy(shot, out / 'audit.png')
    return text


def test_lab_clean_audit_has_no_finding_and_changes_nothing(lab, tmp_path):
    out = tmp_path / 'report'
    run = audit(out)
    assert_read_only(run)
    report = read(out)
    assert report['findings'] == [], report['findings']
    for line in (f'audit.json: {out}/audit.json', f'audit.html: {out}/audit.html', f'audit.prom: {out}/audit.prom',
                 'no findings (2 hosts)'):
        assert line in run.output, run
    assert sorted(report['hosts']) == list(HOSTS)
    h1 = report['hosts']['lab-host1']
    assert h1['parts'] == {'incus': 'read', 'libvirt': 'read', 'ssh': 'read'} and h1['reachable']
    names = {e['name'] for e in h1['trust']}
    clients = {c['name'] for c in yaml.safe_load((LAB_INVENTORY / 'group_vars' / 'all.yml').read_text())['incus_trusted_clients']}
    assert clients <= names and all(e['managed'] for e in h1['trust'] if e['name'] in clients)
    assert {c['type'] for c in h1['libvirt']['certificates']} == {'ca', 'server', 'client'}
    assert h1['libvirt']['libvirtd']['allowed_dns'] and h1['ssh']['ca_keys'][0]['fingerprint'].startswith('SHA256:')
    assert {'deb1', 'deb-prod'} <= set(h1['instances']) and 'bb1' not in h1['instances']   # busybox runs no sshd
    assert h1['instances']['deb1']['ssh']['ca_keys'] == h1['ssh']['ca_keys']
    families = {f.name: f for f in text_string_to_metric_families((out / 'audit.prom').read_text())}
    assert len(families['incus_access_certificate_not_after_seconds'].samples) == len(report['certificates'])
    show_in_chromium(out, report, 'audit-lab-clean')

    # --check: the same report, still written, still nothing changed
    out2 = tmp_path / 'check'
    run = audit(out2, '--check')
    assert_read_only(run)
    assert read(out2)['findings'] == [] and (out2 / 'audit.html').exists() and (out2 / 'audit.prom').exists()


def test_lab_each_problem_is_the_finding_it_is(lab, tmp_path):
    stores, state = lab['stores'], lab['state']
    stray = make_client_cert(tmp_path, unique_name('pytest-stray'))
    soon = make_client_cert(tmp_path, unique_name('pytest-soon'), days=5)
    ci = make_client_cert(tmp_path, unique_name('pytest-ci-deploy'))
    stores['lab-host1'].add(stray.name, stray.cert_pem, restricted=True, projects=['default'], description='left by hand')
    stores['lab-host2'].add(soon.name, soon.cert_pem, restricted=True, projects=['default'])
    stores['lab-host1'].add(ci.name, ci.cert_pem, restricted=False, description='CI pipeline, deploys everything')
    # host2's libvirt client certificate, expired yesterday (same subject, so libvirtd would still let it in)
    client = state / 'host2' / 'pki' / 'libvirt' / 'clientcert.pem'
    old = x509.load_pem_x509_certificate(client.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(old.issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=400))
               .not_valid_after(now - datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    client.write_bytes(expired.public_bytes(serialization.Encoding.PEM))

    out = tmp_path / 'report'
    run = audit(out)
    assert_read_only(run)
    report = read(out)
    assert kinds(report) == sorted([
        ('lab-host1', 'unmanaged', stray.name),
        ('lab-host1', 'unmanaged', ci.name),
        ('lab-host1', 'unrestricted_automation', ci.name),
        ('lab-host2', 'unmanaged', soon.name),
        ('lab-host2', 'expiring', soon.name),
        ('lab-host2', 'expired', str(client)),
    ]), report['findings']
    by = {(f['kind'], f['name']): f for f in report['findings']}
    assert by[('expired', str(client))]['severity'] == 'critical'
    assert by[('unrestricted_automation', ci.name)]['severity'] == 'critical'
    assert 'in 4 days' in by[('expiring', soon.name)]['message'] or 'in 5 days' in by[('expiring', soon.name)]['message']
    for f in report['findings']:   # one line each in the run's own output
        assert f"{f['severity'].upper()} {f['host']} {f['kind']}: {f['message']}" in run.output, run
    prom = {f.name: f for f in text_string_to_metric_families((out / 'audit.prom').read_text())}
    assert {s.labels['severity']: s.value for s in prom['incus_access_audit_findings'].samples} == {'critical': 2.0, 'warning': 4.0}
    expiry = {s.labels['name']: s.value for s in prom['incus_access_certificate_not_after_seconds'].samples
              if s.labels['host'] == 'lab-host2'}
    assert expiry[str(client)] == int(expired.not_valid_after_utc.timestamp())
    text = show_in_chromium(out, report, 'audit-lab-findings')
    for name in (stray.name, soon.name, ci.name):
        assert name in text


def test_lab_an_unreachable_host_is_named_and_the_rest_reported(lab, tmp_path):
    inv = tmp_path / 'inventory'
    inv.mkdir()
    for d in ('group_vars', 'host_vars'):
        (inv / d).symlink_to(LAB_INVENTORY / d)
    (inv / 'incus').symlink_to(LAB_INVENTORY / 'incus')
    hosts = yaml.safe_load((LAB_INVENTORY / 'hosts.yml').read_text())
    # 127.0.0.9: no sshd listens there (the lab's own are on .1 and .2)
    hosts['incus']['hosts']['lab-gone'] = {'ansible_host': '127.0.0.9', 'lab_host_dir': '/nonexistent', 'ansible_ssh_timeout': 5}
    (inv / 'hosts.yml').write_text(yaml.safe_dump(hosts))
    out = tmp_path / 'report'
    run = audit(out, inventory=inv)
    for h in HOSTS:
        assert run.recap[h]['changed'] == 0 and run.recap[h]['failed'] == 0, run
    assert run.recap['lab-gone']['changed'] == 0, run
    report = read(out)
    assert kinds(report) == [('lab-gone', 'unreachable', 'lab-gone')], report['findings']
    assert report['hosts']['lab-gone']['reachable'] is False
    # found unreachable by the first part, not tried again by the others
    assert report['hosts']['lab-gone']['parts'] == {'incus': 'unreachable', 'libvirt': 'not run', 'ssh': 'not run'}
    assert run.output.count('fatal: [lab-gone]: UNREACHABLE!') == 1, run
    assert all(report['hosts'][h]['parts']['incus'] == 'read' and report['hosts'][h]['trust'] for h in HOSTS)
    assert 'CRITICAL lab-gone unreachable: host unreachable, not audited:' in run.output, run


def test_lab_limit_and_tags(lab, tmp_path):
    out = tmp_path / 'report'
    run = audit(out, '--limit', 'lab-host2', '--tags', 'incus_trust')
    assert_read_only(run, hosts=('lab-host2',))
    assert 'lab-host1' not in run.recap
    report = read(out)
    assert list(report['hosts']) == ['lab-host2'] and report['findings'] == []
    assert report['hosts']['lab-host2']['parts'] == {'incus': 'read', 'libvirt': 'not run', 'ssh': 'not run'}
    assert report['hosts']['lab-host2']['instances'] == {}


@pytest.mark.parametrize('extra, message', [
    ({'incus_access_audit_admins': ['workstation-admin', 'nobody-known']},
     "incus_access_audit_admins: 'nobody-known' is not a client of incus_trusted_clients on any host of this run"),
    ({'incus_access_audit_dir': '/proc/1/incus-access-audit'},
     'incus_access_audit_dir /proc/1/incus-access-audit: /proc/1 is not writable'),
])
def test_lab_bad_input_fails_before_anything_is_read(tmp_path, extra, message):
    run = audit(tmp_path / 'report', extra=extra)
    assert run.rc != 0 and message in run.output, run
    assert T_TRUST not in run.output and 'Read the libvirt certificates' not in run.output, run
    assert run.output.count('fatal:') == 1 and list(run.recap) == ['lab-host1'], run   # one error, from the first task
    assert not (tmp_path / 'report').exists()
