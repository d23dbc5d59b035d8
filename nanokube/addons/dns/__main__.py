"""`python -m nanokube.addons.dns --kubeconfig K --listen 127.0.0.1:5353`."""
import sys

from nanokube.addons.dns.main import main, parse_args

sys.exit(main(parse_args()))
