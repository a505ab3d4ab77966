#!/usr/bin/env bash
# Builds the HashiCorp Vault server the e2e tests run as a real peer
# (test/e2e/vault_test.go), from the module test/vaultserver, and prints the
# path of the binary on stdout.
#
# The binary is kept in ${XDG_CACHE_HOME:-~/.cache}/edgegate/vault/<key>/vault,
# <key> being the SHA-256 of what it is built from (go.mod, go.sum, main.go,
# the sdk patch and the Go version); ../vault/current is a symlink to the
# directory of the last one built or found, and is where the tests look
# (EDGEGATE_VAULT_BIN overrides it). Idempotent: when that binary exists and
# runs, nothing is built.
#
# Why a build and not a download: see test/vaultserver/README.md. A cold build
# takes many minutes (all of Vault compiles); later ones only relink.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/test/vaultserver"
sdk_version=v0.18.0
patch_file="$src/sdk-$sdk_version.patch"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/edgegate/vault"

if ! command -v go >/dev/null 2>&1; then
	echo "install-vault: go is not on PATH" >&2
	exit 1
fi

key=$( (cat "$src/go.mod" "$src/go.sum" "$src/main.go" "$patch_file"; go env GOVERSION) | sha256sum | cut -c1-64)
dest="$cache/$key"
bin="$dest/vault"

mkdir -p "$cache"
# One build at a time: two `make test` runs must not race on the build dir.
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
	ln -sfn "$key" "$cache/current"
	echo "$bin"
	exit 0
fi

if ! command -v patch >/dev/null 2>&1; then
	echo "install-vault: needs patch (Debian package patch; install-test-deps.sh installs it)" >&2
	exit 1
fi

start=$SECONDS
echo "install-vault: building vault into $dest (a cold build takes a long while)" >&2

# A fixed build directory outside the repository: the sdk copy is generated,
# and a stable path keeps the Go build cache useful between builds.
work="$cache/build"
rm -rf "$work"
mkdir -p "$work"
cp "$src/go.mod" "$src/go.sum" "$src/main.go" "$work/"

# The module cache is read-only: copy the sdk out, then patch the copy.
# GOFLAGS is cleared here and below: flags meant for the main module
# (-mod=vendor, say) do not apply to this one.
sdk_dir=$(cd "$cache" && GOFLAGS= GOWORK=off go mod download -json "github.com/hashicorp/vault/sdk@$sdk_version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$sdk_dir" ] || [ ! -d "$sdk_dir" ]; then
	echo "install-vault: cannot find github.com/hashicorp/vault/sdk@$sdk_version in the module cache" >&2
	exit 1
fi
cp -R "$sdk_dir" "$work/sdk-patched"
chmod -R u+w "$work/sdk-patched"
patch -p1 --quiet --forward -d "$work/sdk-patched" <"$patch_file"

# -tags minimal is Vault's own tag: no external plugins (their modules are
# not needed), KV, AppRole and cert auth stay built in. CGO_ENABLED=0 as in
# Vault's releases: no C compiler needed, a static binary.
mkdir -p "$dest"
tmp="$dest/vault.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$work" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 nice -n 19 \
	go build -tags minimal -trimpath -ldflags="-s -w" -o "$tmp" .)
"$tmp" version >/dev/null
mv -f "$tmp" "$bin"
ln -sfn "$key" "$cache/current"
rm -rf "$work"

echo "install-vault: built $("$bin" version) in $((SECONDS - start))s" >&2
echo "$bin"
