#!/usr/bin/env bash
# Starts and stops the real services the tests and local runs use:
#   - Apache Kafka 4.x (KRaft, one combined broker+controller) from Maven
#     Central's jars, run with the machine's Java (17+);
#   - Debian's clickhouse-server, run as a plain process with its own config.
# Everything (jars, data, logs, pid files) lives under .cache/.
#
# Usage: scripts/services.sh up|down [kafka|clickhouse]|status|env
#
# Ports (environment):
#   MANHATTAN_KAFKA_PORT            Kafka PLAINTEXT listener   (9092)
#   MANHATTAN_KAFKA_CONTROLLER_PORT Kafka KRaft controller     (9093)
#   MANHATTAN_CLICKHOUSE_PORT       ClickHouse native protocol (9000)
#   MANHATTAN_CLICKHOUSE_HTTP_PORT  ClickHouse HTTP            (18123)
set -euo pipefail
# Debian puts clickhouse-server in /usr/sbin, not on every user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.cache"

KAFKA_PORT=${MANHATTAN_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${MANHATTAN_KAFKA_CONTROLLER_PORT:-9093}
CH_PORT=${MANHATTAN_CLICKHOUSE_PORT:-9000}
CH_HTTP_PORT=${MANHATTAN_CLICKHOUSE_HTTP_PORT:-18123}

KAFKA_HOME="$CACHE/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_LOGS="$KAFKA_HOME/logs"
KAFKA_PID="$KAFKA_HOME/kafka.pid"
KAFKA_HEAP=${MANHATTAN_KAFKA_HEAP:-768m}

CH_HOME="$CACHE/clickhouse"
CH_DATA="$CH_HOME/data"
CH_LOGS="$CH_HOME/logs"
CH_PID="$CH_HOME/clickhouse.pid"

READY_TIMEOUT=${MANHATTAN_SERVICES_TIMEOUT:-120}
STOP_TIMEOUT=30

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive PIDFILE PATTERN: prints the pid when the pid file names a live
# process whose command line contains PATTERN (so a recycled pid is not ours).
# A stale pid file is removed.
pid_alive() {
	local file=$1 pattern=$2 pid
	[[ -f $file ]] || return 1
	pid=$(<"$file")
	if [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] &&
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"; then
		echo "$pid"
		return 0
	fi
	log "removing stale pid file $file"
	rm -f "$file"
	return 1
}

# stop_pid NAME PID: SIGTERM, wait, then SIGKILL.
stop_pid() {
	local name=$1 pid=$2 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
		kill -0 "$pid" 2>/dev/null || { log "$name stopped"; return 0; }
		sleep 0.2
	done
	log "$name (pid $pid) did not stop within ${STOP_TIMEOUT}s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}

need_free_port() {
	local port=$1 what=$2 var=$3
	if port_open "$port"; then
		die "port $port ($what) is already in use by another process; stop it or choose another port with $var"
	fi
}

fill() { # fill TEMPLATE OUT KEY=VALUE...: replace @KEY@ placeholders.
	local in=$1 out=$2 text kv
	shift 2
	text=$(<"$in")
	for kv in "$@"; do
		text=${text//@${kv%%=*}@/${kv#*=}}
	done
	printf '%s\n' "$text" >"$out"
}

# ---------------------------------------------------------------- Kafka ----

java_major() {
	java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

kafka_fetch() {
	local stamp="$KAFKA_LIBS/.complete" pom="$ROOT/scripts/kafka/pom.xml"
	if [[ -f $stamp ]] && cmp -s "$stamp" "$pom"; then
		return 0
	fi
	command -v mvn >/dev/null || die "mvn (Maven) is needed to fetch Apache Kafka's jars: apt-get install -y maven"
	log "fetching Apache Kafka jars from Maven Central into $KAFKA_LIBS"
	rm -rf "$KAFKA_LIBS"
	mkdir -p "$KAFKA_LIBS"
	mvn -q -B -f "$pom" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$KAFKA_HOME/fetch.log" 2>&1 ||
		{ cat "$KAFKA_HOME/fetch.log" >&2; die "fetching Kafka jars failed (log: $KAFKA_HOME/fetch.log)"; }
	cp "$pom" "$stamp"
}

kafka_java() { # kafka_java MAINCLASS ARGS...: run a Kafka class with our classpath.
	java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
		-Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.xml" -Dkafka.logs.dir="$KAFKA_LOGS/tools" \
		-cp "$KAFKA_LIBS/*" "$@"
}

# kafka_probe: a real Metadata request against the PLAINTEXT listener.
kafka_probe() {
	timeout 60 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
		-Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.xml" -Dkafka.logs.dir="$KAFKA_LOGS/tools" \
		-cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand \
		--bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
}

kafka_up() {
	local pid
	if pid=$(pid_alive "$KAFKA_PID" "kafka.Kafka"); then
		if port_open "$KAFKA_PORT"; then
			log "kafka already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
			return 0
		fi
		log "kafka (pid $pid) runs but does not listen on $KAFKA_PORT; restarting it"
		stop_pid kafka "$pid"
		rm -f "$KAFKA_PID"
	fi
	command -v java >/dev/null || die "java (17+) is needed for Apache Kafka: apt-get install -y openjdk-17-jre-headless"
	local major
	major=$(java_major)
	[[ -n $major && $major -ge 17 ]] || die "Apache Kafka 4.x needs Java 17 or newer; java -version says ${major:-unknown}"
	need_free_port "$KAFKA_PORT" "Kafka listener" MANHATTAN_KAFKA_PORT
	need_free_port "$KAFKA_CONTROLLER_PORT" "Kafka controller" MANHATTAN_KAFKA_CONTROLLER_PORT

	mkdir -p "$KAFKA_HOME" "$KAFKA_DATA" "$KAFKA_LOGS"
	kafka_fetch
	local props="$KAFKA_HOME/server.properties"
	fill "$ROOT/scripts/kafka/server.properties.in" "$props" \
		"KAFKA_PORT=$KAFKA_PORT" "CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT" "DATA_DIR=$KAFKA_DATA"

	# A data directory formatted for other ports/quorum would refuse to start:
	# keep the formatted config next to the data and reformat when it changes.
	if [[ -f $KAFKA_DATA/meta.properties ]] && ! cmp -s "$props" "$KAFKA_HOME/formatted.properties"; then
		log "kafka configuration changed; wiping $KAFKA_DATA"
		rm -rf "$KAFKA_DATA"
		mkdir -p "$KAFKA_DATA"
	fi
	if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
		[[ -f $KAFKA_HOME/cluster.id ]] || kafka_java kafka.tools.StorageTool random-uuid >"$KAFKA_HOME/cluster.id"
		log "formatting kafka storage (cluster $(<"$KAFKA_HOME/cluster.id"))"
		kafka_java kafka.tools.StorageTool format -t "$(<"$KAFKA_HOME/cluster.id")" -c "$props" \
			>"$KAFKA_LOGS/format.log" 2>&1 ||
			{ cat "$KAFKA_LOGS/format.log" >&2; die "formatting kafka storage failed"; }
		cp "$props" "$KAFKA_HOME/formatted.properties"
	fi

	log "starting kafka on 127.0.0.1:$KAFKA_PORT (logs: $KAFKA_LOGS)"
	# setsid: the broker outlives this script and its terminal; no stdin.
	setsid java "-Xmx$KAFKA_HEAP" -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.xml" -Dkafka.logs.dir="$KAFKA_LOGS" \
		-cp "$KAFKA_LIBS/*" kafka.Kafka "$props" \
		</dev/null >"$KAFKA_LOGS/kafka.out" 2>&1 &
	pid=$!
	echo "$pid" >"$KAFKA_PID"

	local deadline=$((SECONDS + READY_TIMEOUT))
	until port_open "$KAFKA_PORT"; do
		kill -0 "$pid" 2>/dev/null || {
			tail -n 30 "$KAFKA_LOGS/kafka.out" "$KAFKA_LOGS/server.log" >&2 2>/dev/null || true
			rm -f "$KAFKA_PID"
			die "kafka exited during start-up (logs: $KAFKA_LOGS)"
		}
		((SECONDS < deadline)) || die "kafka did not listen on $KAFKA_PORT within ${READY_TIMEOUT}s (logs: $KAFKA_LOGS)"
		sleep 0.5
	done
	until kafka_probe; do
		kill -0 "$pid" 2>/dev/null || die "kafka exited during start-up (logs: $KAFKA_LOGS)"
		((SECONDS < deadline)) || die "kafka did not answer a metadata request within ${READY_TIMEOUT}s (logs: $KAFKA_LOGS)"
		sleep 1
	done
	log "kafka ready (pid $pid)"
}

kafka_down() {
	local pid
	if pid=$(pid_alive "$KAFKA_PID" "kafka.Kafka"); then
		log "stopping kafka (pid $pid)"
		stop_pid kafka "$pid"
	fi
	rm -f "$KAFKA_PID"
}

# ----------------------------------------------------------- ClickHouse ----

ch_install() {
	command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null && return 0
	[[ $(id -u) -eq 0 ]] || die "clickhouse-server is not installed; run: sudo apt-get install -y clickhouse-server clickhouse-client"
	log "installing clickhouse-server and clickhouse-client with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q clickhouse-server clickhouse-client >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q clickhouse-server clickhouse-client >/dev/null; } ||
		die "apt-get install clickhouse-server clickhouse-client failed"
}

ch_query() { clickhouse-client --host 127.0.0.1 --port "$CH_PORT" -q "$1"; }

ch_up() {
	local pid
	if pid=$(pid_alive "$CH_PID" "clickhouse-server"); then
		if ch_query 'SELECT 1' >/dev/null 2>&1; then
			log "clickhouse already running (pid $pid) on 127.0.0.1:$CH_PORT"
			return 0
		fi
		log "clickhouse (pid $pid) runs but does not answer on $CH_PORT; restarting it"
		stop_pid clickhouse "$pid"
		rm -f "$CH_PID"
	fi
	ch_install
	need_free_port "$CH_PORT" "ClickHouse native" MANHATTAN_CLICKHOUSE_PORT
	need_free_port "$CH_HTTP_PORT" "ClickHouse HTTP" MANHATTAN_CLICKHOUSE_HTTP_PORT

	mkdir -p "$CH_DATA/tmp" "$CH_DATA/user_files" "$CH_DATA/format_schemas" "$CH_LOGS"
	fill "$ROOT/scripts/clickhouse/config.xml.in" "$CH_HOME/config.xml" \
		"TCP_PORT=$CH_PORT" "HTTP_PORT=$CH_HTTP_PORT" "DATA_DIR=$CH_DATA" \
		"LOG_DIR=$CH_LOGS" "CONF_DIR=$CH_HOME"
	cp "$ROOT/scripts/clickhouse/users.xml" "$CH_HOME/users.xml"

	log "starting clickhouse on 127.0.0.1:$CH_PORT (logs: $CH_LOGS)"
	# 18.16 runs as root when its data directory belongs to root (ours does);
	# run from CH_HOME so any relative file it writes stays there.
	(cd "$CH_HOME" && exec setsid clickhouse-server --config-file="$CH_HOME/config.xml" \
		</dev/null >"$CH_LOGS/stdout.log" 2>&1) &
	pid=$!
	echo "$pid" >"$CH_PID"

	local deadline=$((SECONDS + READY_TIMEOUT))
	until ch_query 'SELECT 1' >/dev/null 2>&1; do
		kill -0 "$pid" 2>/dev/null || {
			tail -n 30 "$CH_LOGS/stdout.log" "$CH_LOGS/clickhouse-server.err.log" >&2 2>/dev/null || true
			rm -f "$CH_PID"
			die "clickhouse exited during start-up (logs: $CH_LOGS)"
		}
		((SECONDS < deadline)) || die "clickhouse did not answer on $CH_PORT within ${READY_TIMEOUT}s (logs: $CH_LOGS)"
		sleep 0.5
	done
	log "clickhouse ready (pid $pid, version $(ch_query 'SELECT version()'))"
}

ch_down() {
	local pid
	if pid=$(pid_alive "$CH_PID" "clickhouse-server"); then
		log "stopping clickhouse (pid $pid)"
		stop_pid clickhouse "$pid"
	fi
	rm -f "$CH_PID"
}

# ----------------------------------------------------------------- main ----

status() {
	local pid rc=0
	if pid=$(pid_alive "$KAFKA_PID" "kafka.Kafka" 2>/dev/null); then
		echo "kafka: running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
	else
		echo "kafka: stopped"
		rc=1
	fi
	if pid=$(pid_alive "$CH_PID" "clickhouse-server" 2>/dev/null); then
		echo "clickhouse: running (pid $pid) on 127.0.0.1:$CH_PORT"
	else
		echo "clickhouse: stopped"
		rc=1
	fi
	return $rc
}

env_lines() {
	echo "export MANHATTAN_TEST_KAFKA=127.0.0.1:$KAFKA_PORT"
	echo "export MANHATTAN_TEST_CLICKHOUSE=clickhouse://127.0.0.1:$CH_PORT"
	echo "export CHDB_LIB_PATH=$CACHE/chdb/libchdb.so"
}

case "${1:-}" in
up)
	mkdir -p "$CACHE"
	# Check every port first so a clash fails before anything starts.
	if ! pid_alive "$KAFKA_PID" "kafka.Kafka" >/dev/null; then
		need_free_port "$KAFKA_PORT" "Kafka listener" MANHATTAN_KAFKA_PORT
		need_free_port "$KAFKA_CONTROLLER_PORT" "Kafka controller" MANHATTAN_KAFKA_CONTROLLER_PORT
	fi
	if ! pid_alive "$CH_PID" "clickhouse-server" >/dev/null; then
		need_free_port "$CH_PORT" "ClickHouse native" MANHATTAN_CLICKHOUSE_PORT
		need_free_port "$CH_HTTP_PORT" "ClickHouse HTTP" MANHATTAN_CLICKHOUSE_HTTP_PORT
	fi
	kafka_up
	ch_up
	;;
down)
	case ${2:-} in
	kafka) kafka_down ;;
	clickhouse) ch_down ;;
	"")
		kafka_down
		ch_down
		;;
	*)
		echo "usage: $0 down [kafka|clickhouse]" >&2
		exit 2
		;;
	esac
	;;
status) status ;;
env) env_lines ;;
*)
	echo "usage: $0 up|down [kafka|clickhouse]|status|env" >&2
	exit 2
	;;
esac
