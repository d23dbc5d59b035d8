# nanokube: `make demo` and `make test` set up everything they need (safe to run again).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBS := iproute2 nftables conntrack curl openssl nginx-light libnginx-mod-http-ndk libnginx-mod-http-lua lua-resty-core lua-cjson pebble etcd-server
BENCH_DEBS := wrk iperf3 dnsperf

.PHONY: demo test unit integration bench setup debs clean

setup: debs $(STAMP)

debs:
	@missing=""; for p in $(DEBS) $(EXTRA_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: setup
	$(PY) -m nanokube.demo

test: setup
	$(PY) -m pytest -q tests

unit: setup
	$(PY) -m pytest -q tests/unit

integration: setup
	$(PY) -m pytest -q tests/integration

bench: setup
	$(MAKE) debs EXTRA_DEBS="$(BENCH_DEBS)"
	$(PY) bench/api_server.py
	$(PY) bench/cluster.py
	$(PY) bench/proxy_programming.py
	$(PY) bench/dataplane.py
	$(PY) bench/dns_qps.py

clean:
	rm -rf $(VENV) *.egg-info
