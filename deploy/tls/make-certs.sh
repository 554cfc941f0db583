#!/bin/sh
# A throwaway CA and a broker certificate for deploy/compose.security.yaml (development only;
# production certificates come from your PKI or, on Kubernetes, from Strimzi's cluster CA).
set -eu
cd "$(dirname "$0")"
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=taskflow-dev-ca" \
  -keyout ca.key -out ca.crt
openssl req -newkey rsa:2048 -nodes -subj "/CN=kafka" -keyout kafka.key -out kafka.csr
printf "subjectAltName=DNS:kafka,DNS:localhost\n" > kafka.ext
openssl x509 -req -in kafka.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
  -extfile kafka.ext -out kafka.crt
cat kafka.key kafka.crt > kafka.pem
rm -f kafka.csr kafka.ext ca.srl
chmod 0644 ca.crt kafka.pem
echo "wrote $(pwd)/ca.crt and $(pwd)/kafka.pem"
