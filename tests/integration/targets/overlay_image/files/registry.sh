#!/bin/sh
# Copyright (c) 2026, graphdriver.overlay contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Start Debian's docker-registry over TLS (a CA made here) on a free 127.0.0.1 port, behind
# htpasswd basic auth, in the directory given. Prints "<port> <pid>"; the caller stops it by
# that PID.
set -eu
dir=$1
user=$2
password=$3
mkdir -p "$dir/storage"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=gdo-it-ca -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt 2>/dev/null
htpasswd -Bbn "$user" "$password" > users.htpasswd
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > config.yml <<CONFIG
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/storage}}
http: {addr: "127.0.0.1:$port", secret: gdo-it, tls: {certificate: $dir/server.crt, key: $dir/server.key}}
auth: {htpasswd: {realm: gdo-it, path: $dir/users.htpasswd}}
CONFIG
nohup /usr/bin/docker-registry serve config.yml > registry.log 2>&1 &
pid=$!
tries=0
until curl -fsS --cacert ca.crt -o /dev/null -w '' "https://127.0.0.1:$port/" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        cat registry.log >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done
echo "$port $pid"
