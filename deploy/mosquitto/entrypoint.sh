#!/bin/sh
# Build the password file from the environment at every start and run the broker; no password
# is committed. Users: pw-ingest and pw-api (cloud services) and MQTT_GATEWAY_USERS, a list of
# "gateway-id:password" pairs (gateways log in with their gateway id, see acl). Arguments, if
# any, replace the broker command (the tests use that to check the file it writes).
set -eu
fail() { echo "mosquitto entrypoint: $*" >&2; exit 78; }
[ -n "${MQTT_INGEST_PASSWORD:-}" ] || fail "MQTT_INGEST_PASSWORD is not set (see .env.example)"
[ -n "${MQTT_API_PASSWORD:-}" ] || fail "MQTT_API_PASSWORD is not set (see .env.example)"
passwords="${MOSQUITTO_PASSWORD_FILE:-/mosquitto/data/passwords}"
umask 077
: > "$passwords"
mosquitto_passwd -b "$passwords" pw-ingest "$MQTT_INGEST_PASSWORD"
mosquitto_passwd -b "$passwords" pw-api "$MQTT_API_PASSWORD"
for pair in ${MQTT_GATEWAY_USERS:-}; do
  user="${pair%%:*}" password="${pair#*:}"
  [ -n "$user" ] && [ -n "$password" ] && [ "$user" != "$pair" ] \
    || fail "MQTT_GATEWAY_USERS entries must be gateway-id:password"
  mosquitto_passwd -b "$passwords" "$user" "$password"
done
chown mosquitto:mosquitto "$passwords"
[ "$#" -gt 0 ] || set -- mosquitto -c /mosquitto/config/compose.conf
exec "$@"
