#!/usr/bin/env bash
# Provisioning of the ccd VM (Debian 12): PostgreSQL and ccd next to an installed Asterisk 22,
# which loads asterisk-conf/ (with this host's values in /etc/asterisk/site/).
# Idempotent: run again with `vagrant provision` after changing asterisk-conf/ or ccd.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PBX_IP="${PBX_IP:-192.168.56.10}"
SRC=/vagrant

echo "== packages"
apt-get update -q
apt-get install -y -q ca-certificates postgresql python3 python3-venv python3-dev libpq-dev \
  sox espeak-ng

echo "== Asterisk 22 (installed beforehand; see README, 'A real Asterisk in a VM')"
if ! command -v asterisk >/dev/null || ! asterisk -V | grep -q "Asterisk 22"; then
  echo "This VM needs an installed Asterisk 22 (Debian 12 and 13 do not package it)." >&2
  echo "Install it as Asterisk's own documentation describes (Installing Asterisk From" >&2
  echo "Source, docs.asterisk.org), with res_config_pgsql, app_amd and app_voicemail" >&2
  echo "built, or use a box that has it; then run 'vagrant provision' again." >&2
  exit 1
fi
id asterisk >/dev/null 2>&1 || useradd --system --home /var/lib/asterisk --shell /usr/sbin/nologin asterisk
sed -i 's/^;\?runuser.*/runuser = asterisk/; s/^;\?rungroup.*/rungroup = asterisk/' /etc/asterisk/asterisk.conf
mkdir -p /var/spool/asterisk/monitor
chown -R asterisk:asterisk /var/lib/asterisk /var/spool/asterisk /var/log/asterisk /var/run/asterisk /etc/asterisk
# recordings: Asterisk writes them 0640 (umask 027), in directories of the shared group
# asterisk (setgid: new files and directories keep the group); nothing for others
mkdir -p /etc/systemd/system/asterisk.service.d
printf '[Service]\nUMask=0027\n' > /etc/systemd/system/asterisk.service.d/umask.conf
chmod 2770 /var/spool/asterisk/monitor

echo "== asterisk-conf/ -> /etc/asterisk"
for f in "$SRC"/asterisk-conf/*.conf; do
  install -o asterisk -g asterisk -m 0640 "$f" /etc/asterisk/
done
# this host's own values, included by asterisk-conf/ (pjsip.conf, rtp.conf ...)
install -d -o asterisk -g asterisk /etc/asterisk/site
echo "bind = 0.0.0.0:5060" > /etc/asterisk/site/pjsip-transport-udp.conf
printf 'rtpstart = 10000\nrtpend = 10999\n' > /etc/asterisk/site/rtp.conf
chown -R asterisk:asterisk /etc/asterisk/site
systemctl daemon-reload     # the UMask drop-in above
systemctl enable asterisk
systemctl restart asterisk

echo "== PostgreSQL"
systemctl enable --now postgresql
runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_roles WHERE rolname='ccd'" | grep -q 1 \
  || runuser -u postgres -- psql -c "CREATE ROLE ccd LOGIN PASSWORD 'ccd'"
runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname='ccd'" | grep -q 1 \
  || runuser -u postgres -- createdb -O ccd ccd

echo "== ccd"
id ccd >/dev/null 2>&1 || useradd --system --home /var/lib/ccd --create-home --shell /usr/sbin/nologin ccd
usermod -aG asterisk ccd     # reads the recordings Asterisk writes
python3 -m venv /opt/ccd
/opt/ccd/bin/pip install -q --upgrade pip
/opt/ccd/bin/pip install -q "$SRC"
# the prompts ccd's IVR, dialplan and surveys play, and its music on hold, where Asterisk
# looks (its astdatadir); recordings of your own with the same names are kept
/opt/ccd/bin/ccd prompts install --data-dir /var/lib/asterisk
chown -R asterisk:asterisk /var/lib/asterisk/sounds /var/lib/asterisk/moh
systemctl restart asterisk   # music on hold reads its directory at start
install -d -o ccd -g ccd /etc/ccd /var/lib/ccd
cat > /etc/ccd/ccd.toml <<TOML
data_dir = "/var/lib/ccd"

[ami]
host = "127.0.0.1"
port = 5038
username = "ccd"
secret = "ccdsecret"

[agi]
host = "127.0.0.1"
port = 4573

[database]
url = "postgresql://ccd:ccd@127.0.0.1/ccd"

[recording]
dir = "/var/spool/asterisk/monitor"
dir_mode = "2770"    # Asterisk (user asterisk) writes into the directories ccd creates

[web]
host = "0.0.0.0"
port = 8080
TOML
chown ccd:ccd /etc/ccd/ccd.toml
runuser -u ccd -- /opt/ccd/bin/ccd --config /etc/ccd/ccd.toml db upgrade
cat > /etc/systemd/system/ccd.service <<UNIT
[Unit]
Description=ccd call-center controller
After=network-online.target postgresql.service asterisk.service
Wants=postgresql.service asterisk.service

[Service]
User=ccd
Group=ccd
ExecStart=/opt/ccd/bin/ccd --config /etc/ccd/ccd.toml run
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable ccd
systemctl restart ccd

echo "== ready"
asterisk -rx "core show version"
asterisk -rx "pjsip show endpoints" | grep -E "Endpoint:" || true
echo "Softphones: register 1001..1005 (pw1001..) or 2000 (pw2000) at ${PBX_IP}:5060 UDP."
echo "Call 5551000 from 2000 for the inbound flow; the panel is on http://localhost:8080."
