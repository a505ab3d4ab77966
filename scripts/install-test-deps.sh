#!/usr/bin/env bash
# Installs the real peers the test suites talk to: mosquitto (the reference
# broker for benchmarks and interop), mosquitto_pub/mosquitto_sub (MQTT
# clients for the e2e tests), the openssl CLI (certificate interop tests),
# headless Chromium (the web UI browser tests, driven over CDP by chromedp),
# systemd-analyze (the unit file checks) and a HashiCorp Vault server (the
# trust-list sync tests).
# Idempotent and silent when everything is present.
#
# The tests start their own mosquitto on a free port; the one the Debian package
# starts as a system service would hold :1883, so it is stopped and disabled.
set -euo pipefail

# patch: install-vault.sh patches the Vault sdk it builds against.
packages=(mosquitto mosquitto-clients openssl chromium systemd patch)

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "install-test-deps: need root (or sudo) to run: $*" >&2
		exit 1
	fi
}

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [ "$status" != "install ok installed" ]; then
		missing+=("$pkg")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-test-deps: installing ${missing[*]}" >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
fi

# Stop the packaged broker if it runs. Under systemd (the check sd_booted(3)
# uses) disable the unit; without it, the package's init script started a
# daemon that records its pid: kill only that process, and only if it really is
# mosquitto.
if [ -d /run/systemd/system ]; then
	if systemctl --quiet is-enabled mosquitto 2>/dev/null || systemctl --quiet is-active mosquitto 2>/dev/null; then
		echo "install-test-deps: disabling the system mosquitto service" >&2
		as_root systemctl disable --now --quiet mosquitto
	fi
else
	pidfile=/run/mosquitto/mosquitto.pid
	pid=$(cat "$pidfile" 2>/dev/null || true)
	# Alive: neither gone nor a zombie left unreaped (pid 1 in a container may not reap).
	running() { [ -e "/proc/$pid" ] && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null; }
	if [[ "$pid" =~ ^[0-9]+$ ]] && running && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = mosquitto ]; then
		echo "install-test-deps: stopping the system mosquitto (pid $pid)" >&2
		as_root kill -TERM "$pid"
		for _ in $(seq 50); do
			running || break
			sleep 0.1
		done
		if running; then
			echo "install-test-deps: mosquitto (pid $pid) did not exit" >&2
			exit 1
		fi
	fi
fi

# Pebble, Let's Encrypt's ACME test CA, for the ACME tests. Not in Debian; it
# is a Go program, installed with `go install` into GOBIN, else the first
# GOPATH entry's bin, where the tests look whether or not it is on PATH.
pebble_version=v2.10.1
pebble_module=github.com/letsencrypt/pebble/v2
gobin=$(go env GOBIN)
if [ -z "$gobin" ]; then
	gopath=$(go env GOPATH)
	gobin="${gopath%%:*}/bin"
fi
# The module version recorded in the binary: reinstall anything else.
have=$(go version -m "$gobin/pebble" 2>/dev/null | awk -v m="$pebble_module" '$1 == "mod" && $2 == m { print $3 }' || true)
if [ "$have" != "$pebble_version" ]; then
	echo "install-test-deps: installing pebble $pebble_version into $gobin" >&2
	# GOFLAGS is cleared: flags meant for this repository's build (-mod=vendor,
	# say) are refused by `go install pkg@version`.
	GOFLAGS= GOBIN="$gobin" go install "$pebble_module/cmd/pebble@$pebble_version"
fi

# HashiCorp Vault, the server the trust-list sync tests run in dev mode. Built
# from Go modules by its own script (a cold build takes many minutes; after
# that it finds its cached binary and does nothing); it prints the binary's
# path, which is not needed here.
"$(dirname "$0")/install-vault.sh" >/dev/null
