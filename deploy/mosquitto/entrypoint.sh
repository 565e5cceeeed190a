#!/bin/sh
# Build the password file from MQTT_USERS ("user:password user:password ...") and start the
# broker. Gateways are users named after their gateway id (see acl).
set -eu
: > /mosquitto/data/passwords
chmod 0700 /mosquitto/data/passwords
for pair in ${MQTT_USERS}; do
  mosquitto_passwd -b /mosquitto/data/passwords "${pair%%:*}" "${pair#*:}"
done
chown mosquitto:mosquitto /mosquitto/data/passwords
exec mosquitto -c /mosquitto/config/compose.conf
