#!/bin/sh
# The install step of the teststand example: run it from this folder before
# `berth up`; running it again is harmless. It makes the logins, as berth users:
#   lab                        the lab's login for the status page (role lab)
#   teststand1 .. teststandN   one MQTT login per stand (role stand), N = $STANDS (3)
# Their passwords are made once, at random, and kept in logins.env (keep it private);
# the users live in berth's store (.berth/). Users can be added before `berth up`.
# (This replaces mosquitto_passwd, the password file, and Django's createsuperuser.)
set -eu
cd "$(dirname "$0")"
STANDS=${STANDS:-3}

command -v python3 >/dev/null 2>&1 || { echo "setup: python3 is missing (the app is a Python program)" >&2; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' \
  || { echo "setup: python3 is older than 3.8" >&2; exit 1; }
command -v berth >/dev/null 2>&1 || { echo "setup: berth is not on PATH" >&2; exit 1; }
python3 -c 'import paho.mqtt' 2>/dev/null \
  || echo "setup: note: paho-mqtt is not installed; stand.py needs it (pip install paho-mqtt), mosquitto_pub works too"

berth check >/dev/null

umask 077
[ -f logins.env ] || printf '# Logins made by setup.sh (berth users). Keep this file private.\n' > logins.env

# password VAR: make a password for VAR in logins.env, unless it has one.
# Sets $pw to it, and $new to yes when it was just made.
password() {
  new=no
  if ! grep -q "^$1=" logins.env; then
    printf '%s=%s\n' "$1" "$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')" >> logins.env
    new=yes
  fi
  pw=$(sed -n "s/^$1=//p" logins.env)
}

# login NAME ROLE VAR: add the berth user; an existing one keeps its password (and its
# sessions), unless logins.env had none for it.
login() {
  password "$3"
  rc=0
  out=$(printf '%s\n' "$pw" | berth user add "$1" --role "$2" --password-stdin 2>&1) || rc=$?
  case $rc in
    0) echo "setup: added user $1 (role $2)" ;;
    5) berth user roles "$1" --role "$2" >/dev/null
       if [ "$new" = yes ]; then
         printf '%s\n' "$pw" | berth user passwd "$1" --password-stdin >/dev/null
         echo "setup: user $1 exists; its password is now the one in logins.env"
       else
         echo "setup: user $1 exists (role $2)"
       fi ;;
    *) echo "$out" >&2; exit 1 ;;
  esac
}

login lab lab LAB_PASSWORD
i=1
while [ "$i" -le "$STANDS" ]; do
  login "teststand$i" stand "TESTSTAND${i}_PASSWORD"
  i=$((i + 1))
done

echo "setup: ready; the passwords are in logins.env. Now run \`berth up\` here,"
echo "setup: then open https://localhost:8451/ and sign in as lab."
