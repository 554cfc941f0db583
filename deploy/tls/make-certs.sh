#!/bin/sh
# A throwaway CA, a broker certificate and a SCRAM password file for
# deploy/compose.security.yaml (development only; production certificates come from your PKI
# or, on Kubernetes, from Strimzi's cluster CA, and passwords from your secret store).
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
# The SCRAM password, as a compose secret file (kept if it exists: the broker has it).
# Readable by the containers' users (uid 10001, the Kafka image's appuser): compose mounts
# file secrets as they are on the host.
mkdir -p ../secrets
if [ ! -s ../secrets/kafka-scram-password ]; then
  (umask 022 && openssl rand -base64 33 | tr -d '\n' > ../secrets/kafka-scram-password)
fi
echo "wrote $(pwd)/ca.crt, $(pwd)/kafka.pem and $(cd ../secrets && pwd)/kafka-scram-password"
