#!/bin/sh
# Throwaway certificates for the TLS tests, made at test time (no private key is committed):
# a CA, the aggregator's certificate for localhost/127.0.0.1, a learner's client certificate,
# and a rogue CA with a learner certificate it signed.
set -eu
dir="$1"
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
ca() { key "$1.key"; openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2"; }
signed() {  # name, subject, ca, [extensions file]
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" -days 2 \
    ${4:+-extfile "$4"} 2>/dev/null
}
ca ca "Flotilla test CA"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
signed server localhost ca server.ext
signed learner learner-1 ca
ca rogue-ca "Rogue CA"
signed rogue learner-1 rogue-ca
