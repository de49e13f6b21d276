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
  cat >"$home/server-$port.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
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
}

format_storage() {
  [ -f "$data/meta.properties" ] && return 0
  log "formatting KRaft storage in $data"
  java -cp "$(classpath)" -Dlog4j2.configurationFile="$here/log4j2.yaml" \
    kafka.tools.StorageTool format \
    -t "$(java -cp "$(classpath)" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)" \
    -c "$home/server-$port.properties" >>"$logfile" 2>&1 \
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
