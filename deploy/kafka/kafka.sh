#!/usr/bin/env bash
# Runs a single-node Apache Kafka broker (KRaft) from the official jars on Maven Central.
#
#   deploy/kafka/kafka.sh start    resolve jars (once), format storage (once), start, wait until ready
#   deploy/kafka/kafka.sh stop     stop the broker started here, and wait until it is gone
#   deploy/kafka/kafka.sh status   exit 0 when the broker answers on its port
#   deploy/kafka/kafka.sh classpath
#
# Environment (all optional):
#   KAFKA_PORT      client port on 127.0.0.1          (default 19092)
#   KAFKA_HOME_DIR  where jars, data, log and pid go  (default .local/kafka in the repo)
#   KAFKA_START_TIMEOUT seconds to wait for readiness (default 90)
#
# TLS and SASL (optional; without them the broker has only its PLAINTEXT listener):
#   KAFKA_TLS_DIR       certificates made by deploy/kafka/tls-certs.sh DIR
#   KAFKA_SSL_PORT      adds an SSL listener on 127.0.0.1 that requires a client certificate
#   KAFKA_SASL_SSL_PORT adds a SASL_SSL listener (SCRAM-SHA-256 and SCRAM-SHA-512)
#   KAFKA_SCRAM_USERS   "user:password ..." created when the storage is formatted (after reset)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${KAFKA_PORT:-19092}
controller_port=$((port + 1))
home=${KAFKA_HOME_DIR:-$repo/.local/kafka}
jars=$home/jars
data=$home/data-$port
logfile=$home/broker-$port.log
pidfile=$home/broker-$port.pid
timeout=${KAFKA_START_TIMEOUT:-90}

log() { echo "kafka.sh: $*" >&2; }

port_open() {
  # Bash's /dev/tcp avoids depending on nc being installed.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

resolve_jars() {
  local stamp=$jars/.resolved-$(sha256sum "$here/pom.xml" | cut -c1-16)
  [ -f "$stamp" ] && return 0
  command -v mvn >/dev/null || { log "Maven (mvn) is required to fetch the Kafka jars"; exit 1; }
  log "resolving Apache Kafka jars with Maven into $jars"
  rm -rf "$jars"
  mkdir -p "$jars"
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$jars" -DincludeScope=runtime
  touch "$stamp"
}

classpath() { echo "$jars/*"; }

write_config() {
  mkdir -p "$data"
  local listeners=PLAINTEXT://127.0.0.1:$port
  [ -n "${KAFKA_SSL_PORT:-}" ] && listeners=$listeners,SSL://127.0.0.1:$KAFKA_SSL_PORT
  [ -n "${KAFKA_SASL_SSL_PORT:-}" ] && listeners=$listeners,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT
  # The properties name the keystore password, so only the owner may read them.
  (umask 077; cat >"$home/server-$port.properties") <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=$listeners,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.hours=24
log.segment.bytes=16777216
PROPS
  if [ -n "${KAFKA_SSL_PORT:-}${KAFKA_SASL_SSL_PORT:-}" ]; then
    write_tls_config >>"$home/server-$port.properties"
  fi
}

write_tls_config() {
  local tls=${KAFKA_TLS_DIR:?KAFKA_TLS_DIR is required with KAFKA_SSL_PORT or KAFKA_SASL_SSL_PORT}
  tls=$(cd "$tls" && pwd)
  [ -f "$tls/broker.p12" ] || { log "no $tls/broker.p12; run deploy/kafka/tls-certs.sh $tls"; exit 1; }
  local store_pw
  store_pw=$(cat "$tls/store.password")
  cat <<PROPS
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$store_pw
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.ssl.ssl.client.auth=required
listener.name.sasl_ssl.ssl.client.auth=none
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
PROPS
}

# StorageTool arguments that create the SCRAM users of KAFKA_SCRAM_USERS.
scram_args() {
  local entry user password
  for entry in ${KAFKA_SCRAM_USERS:-}; do
    user=${entry%%:*}
    password=${entry#*:}
    printf '%s\n' --add-scram "SCRAM-SHA-256=[name=$user,password=$password]" \
      --add-scram "SCRAM-SHA-512=[name=$user,password=$password]"
  done
}

format_storage() {
  if [ -f "$data/meta.properties" ]; then
    [ -n "${KAFKA_SCRAM_USERS:-}" ] && log "storage already formatted; KAFKA_SCRAM_USERS applies after reset"
    return 0
  fi
  log "formatting KRaft storage in $data"
  local scram=()
  mapfile -t scram < <(scram_args)
  java -cp "$(classpath)" -Dlog4j2.configurationFile="$here/log4j2.yaml" \
    kafka.tools.StorageTool format \
    -t "$(java -cp "$(classpath)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)" \
    -c "$home/server-$port.properties" "${scram[@]}" >>"$logfile" 2>&1 \
    || { log "storage format failed; see $logfile"; tail -n 20 "$logfile" >&2; exit 1; }
}

start() {
  if running_pid >/dev/null; then
    log "already running (pid $(running_pid)) on 127.0.0.1:$port"
    return 0
  fi
  if port_open "$port"; then
    log "port $port is already taken by another process; set KAFKA_PORT"
    exit 1
  fi
  command -v java >/dev/null || { log "Java 17+ is required"; exit 1; }
  resolve_jars
  write_config
  format_storage
  # A fresh log per start, so the readiness check cannot match an earlier run's lines.
  [ -f "$logfile" ] && mv -f "$logfile" "$logfile.1"
  log "starting broker on 127.0.0.1:$port (log: $logfile)"
  # setsid detaches the broker from the caller's process group and terminal.
  setsid java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.yaml" \
    -cp "$(classpath)" kafka.Kafka "$home/server-$port.properties" \
    >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local waited=0
  until port_open "$port" && grep -q "Kafka Server started" "$logfile"; do
    if ! running_pid >/dev/null; then
      log "broker exited during start-up; last lines of $logfile:"
      tail -n 30 "$logfile" >&2
      exit 1
    fi
    if [ "$waited" -ge "$((timeout * 2))" ]; then
      log "broker not ready after ${timeout}s; see $logfile"
      stop
      exit 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  log "ready on 127.0.0.1:$port (pid $(cat "$pidfile"))"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$pidfile"
    log "not running"
    return 0
  fi
  log "stopping broker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker did not stop within 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) port_open "$port" && running_pid >/dev/null ;;
  restart) stop; start ;;
  reset) stop; rm -rf "$data"; log "data removed" ;;
  classpath) resolve_jars; classpath ;;
  *) echo "usage: $0 start|stop|status|restart|reset|classpath" >&2; exit 2 ;;
esac
