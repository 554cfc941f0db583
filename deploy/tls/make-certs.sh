#!/bin/sh
# A throwaway CA, the broker's certificate in a PKCS#12 keystore, and the SCRAM and keystore
# password files for deploy/compose.security.yaml (development only; production certificates
# come from your PKI or, on Kubernetes, from Strimzi's cluster CA, and passwords from your
# secret store).
set -eu
cd "$(dirname "$0")"
# Password files, as compose secret files (kept if they exist: the broker has them).
# Readable by the containers' users (uid 10001 for TaskFlow, 1000 for the Kafka image): compose mounts
# file secrets as they are on the host.
mkdir -p ../secrets
if [ ! -s ../secrets/kafka-scram-password ]; then
  (umask 022 && openssl rand -base64 33 | tr -d '\n' > ../secrets/kafka-scram-password)
fi
if [ ! -s ../secrets/kafka-keystore-password ]; then
  (umask 022 && openssl rand -hex 24 | tr -d '\n' > ../secrets/kafka-keystore-password)
fi
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=taskflow-dev-ca" \
  -keyout ca.key -out ca.crt
openssl req -newkey rsa:2048 -nodes -subj "/CN=kafka" -keyout kafka.key -out kafka.csr
printf "subjectAltName=DNS:kafka,DNS:localhost\n" > kafka.ext
openssl x509 -req -in kafka.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
  -extfile kafka.ext -out kafka.crt
# The apache/kafka image wants a keystore with a password (see compose.security.yaml): the
# key and certificate chain in PKCS#12, key and store under the one password.
openssl pkcs12 -export -name kafka -in kafka.crt -inkey kafka.key -certfile ca.crt \
  -passout file:../secrets/kafka-keystore-password -out kafka.keystore.p12
rm -f kafka.csr kafka.ext ca.srl
chmod 0644 ca.crt kafka.keystore.p12
echo "wrote $(pwd)/ca.crt, $(pwd)/kafka.keystore.p12 and, in $(cd ../secrets && pwd)," \
  "kafka-scram-password and kafka-keystore-password"
