#!/usr/bin/env bash
# Makes a throw-away certificate authority, a broker keystore and a client certificate for a
# local TLS broker (deploy/kafka/kafka.sh with KAFKA_TLS_DIR), with the JDK's keytool and openssl.
#
#   deploy/kafka/tls-certs.sh DIR
#
# Writes into DIR (created, mode 700); passwords are random and only ever written to files:
#   ca.pem                    the CA certificate: JOURNEY_KAFKA_SSL_CAFILE
#   broker.p12                the broker's keystore: its key and certificate (127.0.0.1, localhost)
#   store.password            password of the PKCS12 stores (read by kafka.sh)
#   client.pem, client.key    a client certificate signed by the CA, and its encrypted key
#   client-key.password       the password of client.key: JOURNEY_KAFKA_SSL_KEY_PASSWORD
# For tests and local trials only: the CA key stays in DIR/ca.p12.
set -euo pipefail

dir=${1:?usage: $0 DIR}
days=${TLS_CERT_DAYS:-7}
log() { echo "tls-certs.sh: $*" >&2; }
for tool in keytool openssl; do
  command -v "$tool" >/dev/null || { log "$tool is required (JDK 17+ and openssl)"; exit 1; }
done

mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
rm -f ca.p12 ca.pem broker.p12 broker.csr broker.crt broker-chain.pem client.csr client.pem \
  client.key store.password client-key.password
umask 077
openssl rand -hex 16 >store.password
openssl rand -hex 16 >client-key.password

# keytool is a JVM per call; these flags halve its start-up on a busy machine.
keytool() { command keytool -J-XX:+UseSerialGC -J-XX:TieredStopAtLevel=1 "$@"; }
quiet() { "$@" >/dev/null 2>&1 || { log "failed: $1 ${2:-}"; "$@" >&2; exit 1; }; }

# The CA: a self-signed key pair that may sign certificates.
quiet keytool -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity "$days" \
  -dname "CN=journey test CA" -ext bc:c -keystore ca.p12 -storetype PKCS12 \
  -storepass:file store.password
quiet keytool -exportcert -rfc -alias ca -keystore ca.p12 -storepass:file store.password \
  -file ca.pem

# The broker: a key pair whose certificate, signed by the CA, names 127.0.0.1 and localhost.
quiet keytool -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity "$days" \
  -dname "CN=localhost" -keystore broker.p12 -storetype PKCS12 -storepass:file store.password
quiet keytool -certreq -alias broker -keystore broker.p12 -storepass:file store.password \
  -file broker.csr
quiet keytool -gencert -alias ca -keystore ca.p12 -storepass:file store.password \
  -infile broker.csr -outfile broker.crt -rfc -validity "$days" \
  -ext "SAN=IP:127.0.0.1,DNS:localhost" -ext ku:c=digitalSignature,keyEncipherment \
  -ext eku=serverAuth,clientAuth
# The signed certificate and the CA's, as one chain, replace the self-signed one.
cat broker.crt ca.pem >broker-chain.pem
quiet keytool -importcert -noprompt -alias broker -file broker-chain.pem -keystore broker.p12 \
  -storepass:file store.password

# The client: openssl makes the encrypted PEM key and request that Python's ssl reads; the CA signs.
quiet openssl req -new -newkey rsa:2048 -subj "/CN=journey-client" \
  -passout file:client-key.password -keyout client.key -out client.csr
quiet keytool -gencert -alias ca -keystore ca.p12 -storepass:file store.password \
  -infile client.csr -outfile client.pem -rfc -validity "$days" -ext eku=clientAuth
rm -f broker.csr broker.crt broker-chain.pem client.csr
log "certificates written to $dir"
