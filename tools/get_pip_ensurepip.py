"""Stands in for ansible-test's pip bootstrap script (get-pip-<version>.py from
ci-files.testing.ansible.com, not reachable from here) in tools/sanity.sh's private HOME:
installs the interpreter's bundled pip (ensurepip), then `pip install` of the arguments
(the pinned pip) from PyPI, as get-pip.py does."""

import subprocess
import sys

# in a process of its own: ensurepip sets PIP_CONFIG_FILE=/dev/null, which would hide the
# machine's pip configuration (its CA bundle, for one) from the install below
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'])
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install', *args]))
