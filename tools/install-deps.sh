#!/bin/sh
# Installs the Debian packages nn builds and tests with, if any is missing.
# As root it runs apt-get; otherwise it prints the command to run.
set -e
need=""
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in gcc make pkg-config libopenblas-dev libjpeg62-turbo-dev libpng-dev check; do
    have "$p" || need="$need $p"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "nn: installing:$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $need
else
    echo "nn: missing Debian packages:$need" >&2
    echo "nn: run as root:  apt-get install -y$need" >&2
    exit 1
fi
