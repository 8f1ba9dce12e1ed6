#!/bin/sh
# Make a private CA and a Redis server certificate for the br-fleet broker (docs/DEPLOY.md step 5).
#
#   sudo sh make-redis-tls.sh HOSTNAME PRIVATE_IP [OUT_DIR]
#
# HOSTNAME and PRIVATE_IP are the coordinator's name and address as the agents will use them in
# the broker URL (clients check the certificate's names). 127.0.0.1 and localhost are added for
# Flower and `br` on the coordinator itself. OUT_DIR defaults to /etc/redis/tls.
# Writes OUT_DIR/ca.crt (give it to every agent as /etc/br-fleet/tls/redis-ca.pem), ca.key (keep
# it there or offline; only needed to renew), redis.crt and redis.key (for redis-server).
# Keys are created mode 0600; when the redis user exists, the server key is handed to it.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 HOSTNAME PRIVATE_IP [OUT_DIR]" >&2; exit 2; }
host=$1
ip=$2
out=${3:-/etc/redis/tls}
umask 077
mkdir -p "$out"
cd "$out"
if [ ! -s ca.key ]; then
  openssl req -x509 -new -newkey rsa:3072 -nodes -sha256 -days 3650 \
    -subj "/CN=br-fleet broker CA" -keyout ca.key -out ca.crt 2>/dev/null
fi
openssl req -new -newkey rsa:3072 -nodes -sha256 -subj "/CN=$host" \
  -keyout redis.key -out redis.csr 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:localhost,IP:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' \
  "$host" "$ip" > redis.ext
openssl x509 -req -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 825 \
  -extfile redis.ext -out redis.crt 2>/dev/null
rm -f redis.csr redis.ext
chmod 0644 ca.crt redis.crt
chmod 0755 "$out"
if id redis >/dev/null 2>&1; then
  chown redis:redis redis.key redis.crt
fi
echo "wrote $out/ca.crt $out/redis.crt $out/redis.key (CA key: $out/ca.key)"
