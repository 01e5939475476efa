#!/usr/bin/env bash
# bench_servers.sh -- drop-in containment on real servers, measured in one run (DESIGN §8):
#
#   (a) MariaDB (Debian's mariadbd, unmodified) under sysbench oltp_read_write and
#       oltp_read_only, 8 threads: the same server in three configurations, runs alternated:
#         without  no preload;
#         contain  LD_PRELOAD=libvmsrs.so + VMSRS_ENV_FILE=preload/mariadb.env with its
#                  monitored ranges emptied (VMSRS_RANGES= VMSRS_RANGE_<N>=): containment only;
#         with     LD_PRELOAD=libvmsrs.so + VMSRS_ENV_FILE=preload/mariadb.env: containment and
#                  the monitored ranges watched (issue 8's recovery);
#   (b) Apache httpd (event MPM, the tests' mod_vmsrs_fault /ok handler) under wrk, the same
#       three configurations with preload/apache2.env;
#   (c) the latency of a faulting request against a normal one: c-examples/dropin_server
#       (CRASH vs SET, preloaded with c-examples/dropin_server.env) and mariadbd
#       (SELECT vmsrs_fault(1, 151) vs SELECT vmsrs_fault(0), on fresh connections);
#   (d) lock tracking cost: c-examples/bench_locks.c (an uncontended pthread mutex and spin
#       lock/unlock pair, preloaded vs plain, in the same run; also run by scripts/bench.sh).
#
#   scripts/bench_servers.sh [--quick] [--only mariadb|apache|latency|locks]...
#
#   --quick   2 alternations of 5 s (sysbench) and 3 s (wrk), 50 latency pairs: a smoke run
#   ROUNDS=5 SB_TIME=20 SB_THREADS=8 SB_TABLES=4 SB_TABLE_SIZE=10000 WRK_TIME=10
#   WRK_CONNS=8 LAT_N=300 override the defaults; KEEP=1 keeps the work directory.
#
# Servers run as root in a private directory under $TMPDIR (datadirs, sockets, logs,
# generated httpd.conf; nothing from /etc or /var/lib), mariadbd on a Unix socket only
# (--skip-networking), httpd and dropin_server on 127.0.0.1; each is its own process group,
# stopped (SIGTERM, then SIGKILL) when the script ends, also on error or Ctrl-C. Each
# alternation runs the three configurations back to back, in ABC CBA order (odd rounds
# without, contain, with; even rounds the reverse), so slow drifts of the shared machine's
# load cancel out.
# Reported for each server: throughput and the server's CPU time (user + system, all its
# processes) per transaction or per 1000 requests; throughput on a shared 2-CPU machine swings
# by ±10 % from run to run, while CPU time per unit of work measures what libvmsrs adds.
# Reported: per-run figures, medians, and the medians of the per-round ratios contain/without,
# with/without and with/contain (the figures in the final table; each round's runs ran back
# to back). Nothing is asserted about
# timing: the script fails only if a server does not start, a client fails, or a fault is
# not contained. Full outputs land in target/bench/servers/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench/servers
ROUNDS=${ROUNDS:-5} SB_TIME=${SB_TIME:-20} SB_THREADS=${SB_THREADS:-8} SB_TABLES=${SB_TABLES:-4}
SB_TABLE_SIZE=${SB_TABLE_SIZE:-10000} WRK_TIME=${WRK_TIME:-10} WRK_CONNS=${WRK_CONNS:-8}
LAT_N=${LAT_N:-300}
ONLY=()
while (($#)); do
    case $1 in
        --quick) ROUNDS=2 SB_TIME=5 WRK_TIME=3 LAT_N=50 ;;
        --only) ONLY+=("$2"); shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "bench_servers.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
want() { ((${#ONLY[@]} == 0)) || [[ " ${ONLY[*]} " == *" $1 "* ]]; }

# Nothing inherited: only the servers started "contain" and "with" get the preload.
unset LD_PRELOAD LD_LIBRARY_PATH
for v in $(compgen -e | grep '^VMSRS_' || true); do unset "$v"; done

need() { command -v "$1" >/dev/null || { echo "bench_servers.sh: $1 missing: run scripts/setup.sh (package $2)" >&2; exit 1; }; }
need gcc gcc; need perl perl
MARIADBD=/usr/sbin/mariadbd APACHE2=/usr/sbin/apache2 APACHE_MODULES=/usr/lib/apache2/modules
if want mariadb || want latency; then
    need mariadb-install-db mariadb-server; need mariadb mariadb-client; need mariadb_config libmariadb-dev
    [[ -x $MARIADBD ]] || { echo "bench_servers.sh: $MARIADBD missing: run scripts/setup.sh" >&2; exit 1; }
fi
want mariadb && need sysbench sysbench
if want apache; then need apxs apache2-dev; need wrk wrk; [[ -x $APACHE2 ]] || { echo "bench_servers.sh: $APACHE2 missing" >&2; exit 1; }; fi

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmsrs-bench-XXXXXX")
chmod 755 "$WORK" # httpd's children (www-data) read their directory
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
    if [[ ${KEEP:-0} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# spawn LOG CMD...: start CMD as the leader of its own process group (setsid does not fork:
# a background job of this non-interactive shell is no group leader), output to LOG; sets PID.
spawn() {
    local log=$1; shift
    setsid "$@" </dev/null >>"$log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}
# stop PID: SIGTERM its group, SIGKILL after 30 s.
stop() {
    local p=$1 q=()
    kill -TERM -- "-$p" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for x in "${PIDS[@]}"; do [[ $x == "$p" ]] || q+=("$x"); done
    PIDS=("${q[@]}")
}
free_port() { perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport'; }
median() { sort -g | awk '{v[NR] = $1} END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.3f", b / a; else print "nan" }'; }
pct() { awk -v r="$1" 'BEGIN { if (r == "nan") print "nan"; else printf "%+.1f %%", (r - 1) * 100 }'; }
# The three configurations, and the environment each server of one is started with
# (preload_env KIND ENVFILE): containment only empties the env file's monitored ranges.
KINDS=(without contain with)
preload_env() {
    case $1 in
        without) ;;
        # Every range key the env file sets, emptied (the environment overrides the file).
        # shellcheck disable=SC2046 # one word per key
        contain) echo LD_PRELOAD="$LIB" VMSRS_ENV_FILE="$2" \
            $(sed -n 's/^[[:space:]]*\(VMSRS_RANGES\|VMSRS_RANGE_[0-9]*\)[[:space:]]*=.*/\1=/p' "$2") ;;
        with) echo LD_PRELOAD="$LIB" VMSRS_ENV_FILE="$2" ;;
    esac
}
# round_ratios: after a round, append its ratios (from R1 and C1, the round's throughput and CPU
# per configuration) to the per-round lists TP_C TP_W TP_WC (throughput) and CP_C CP_W CP_WC
# (CPU per unit of work).
round_ratios() {
    TP_C+="$(ratio "${R1[without]}" "${R1[contain]}") " TP_W+="$(ratio "${R1[without]}" "${R1[with]}") "
    TP_WC+="$(ratio "${R1[contain]}" "${R1[with]}") "
    CP_C+="$(ratio "${C1[without]}" "${C1[contain]}") " CP_W+="$(ratio "${C1[without]}" "${C1[with]}") "
    CP_WC+="$(ratio "${C1[contain]}" "${C1[with]}") "
}
# kind_order ROUND: ABC on odd rounds, CBA on even ones.
kind_order() { if (($1 % 2)); then echo without contain with; else echo with contain without; fi; }
# summarize WHAT UNIT WITHOUT CONTAIN WITH PAIRS_C PAIRS_W PAIRS_WC BAR: from the figures of the
# three configurations (one per round, space-separated) and each round's ratios contain/without,
# with/without and with/contain: print the medians and the median of each per-round ratio (the
# figure reported: each round's runs ran back to back, so it is the least sensitive to the
# machine's load drifting over the run); add a RESULTS row.
summarize() {
    local a c w pc pw pwc
    a=$(tr ' ' '\n' <<<"$3" | grep . | median)
    c=$(tr ' ' '\n' <<<"$4" | grep . | median)
    w=$(tr ' ' '\n' <<<"$5" | grep . | median)
    pc=$(tr ' ' '\n' <<<"$6" | grep . | median)
    pw=$(tr ' ' '\n' <<<"$7" | grep . | median)
    pwc=$(tr ' ' '\n' <<<"$8" | grep . | median)
    echo "  $1 per-round ratios: contain/without $6; with/without $7; with/contain $8"
    echo "  median: without $a, contain $c, with $w $2; median per-round ratio contain/without $pc ($(pct "$pc")), with/without $pw ($(pct "$pw")), with/contain $pwc ($(pct "$pwc"))"
    RESULTS+=("$1 $2, median of $ROUNDS|$a|$c|$w|$pc ($(pct "$pc"))|$pw ($(pct "$pw"))|$pwc ($(pct "$pwc"))|$9")
}
# group_ticks PGID: the CPU time (user + system, clock ticks) the live processes of process
# group PGID have used. Throughput on a shared 2-CPU machine swings by ±10 % between runs; the
# server's CPU time per transaction is what libvmsrs adds to the work, and varies far less.
group_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g) t += $12 + $13 } END { print t + 0 }'
}
CLK_TCK=$(getconf CLK_TCK)
# cpu_us TICKS COUNT: CPU microseconds per unit of work.
cpu_us() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "nan" }'; }

echo "== build"
cargo build --release -p vmsrs --lib 2>&1 | tail -n 1
LIB=$ROOT/target/release/libvmsrs.so
[[ -f $LIB ]] || { echo "bench_servers.sh: $LIB missing" >&2; exit 1; }
CFLAGS=(-O2 -g -Wall -Wextra -Werror -pthread)
mkdir -p "$OUT/plugin"
gcc "${CFLAGS[@]}" -rdynamic c-examples/dropin_server.c -o "$OUT/dropin_server"
if want mariadb || want latency; then
    gcc "${CFLAGS[@]}" -shared -fPIC c-examples/servers/udf_fault.c -o "$OUT/plugin/udf_fault.so"
    # shellcheck disable=SC2046 # mariadb_config prints several words
    gcc "${CFLAGS[@]}" -DWITH_MYSQL $(mariadb_config --cflags) c-examples/bench_servers_latency.c \
        -o "$OUT/bench_servers_latency" $(mariadb_config --libs)
else
    gcc "${CFLAGS[@]}" c-examples/bench_servers_latency.c -o "$OUT/bench_servers_latency"
fi
echo "libvmsrs: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src hv preload 2>/dev/null || echo ' + uncommitted changes')"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared: figures are noisy)"
echo "work directory: $WORK"

RESULTS=() # "name|without|with|unit|bar" rows of the final table

# ---------------------------------------------------------------------------------------
# MariaDB
# ---------------------------------------------------------------------------------------
MARIADB_OPTS=(--innodb-log-file-size=8M --innodb-buffer-pool-size=64M)
mariadb_install() { # DIR: a fresh datadir in DIR/data
    mariadb-install-db --no-defaults --datadir="$1/data" --user=root --auth-root-authentication-method=normal \
        --skip-test-db "${MARIADB_OPTS[@]}" >"$1/install.log" 2>&1 ||
        { cat "$1/install.log" >&2; echo "bench_servers.sh: mariadb-install-db failed" >&2; exit 1; }
}
# mariadb_start DIR KIND: start mariadbd on DIR/data, socket DIR/s; sets PID.
mariadb_start() {
    local d=$1 env
    read -ra env <<<"$(preload_env "$2" "$ROOT/preload/mariadb.env")"
    spawn "$d/mariadbd.log" env "${env[@]}" "$MARIADBD" --no-defaults --datadir="$d/data" --socket="$d/s" \
        --skip-networking --user=root --plugin-dir="$OUT/plugin" --pid-file="$d/mariadbd.pid" --tmpdir="$d" \
        "${MARIADB_OPTS[@]}" --skip-log-bin --skip-name-resolve --innodb-flush-log-at-trx-commit=2 \
        --max-connections=151
    for _ in $(seq 600); do
        kill -0 "$PID" 2>/dev/null || { tail -n 30 "$d/mariadbd.log" >&2; echo "bench_servers.sh: mariadbd ($2) exited" >&2; exit 1; }
        [[ -S $d/s ]] && sql "$d" "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 30 "$d/mariadbd.log" >&2; echo "bench_servers.sh: mariadbd ($2) did not start in 60 s" >&2; exit 1
}
sql() { timeout 60 mariadb --no-defaults --socket="$1/s" --user=root --batch --skip-column-names -e "$2"; }
sb() { # DIR ARGS...
    local d=$1; shift
    timeout $((SB_TIME + 120)) sysbench --db-driver=mysql --mysql-user=root --mysql-db=sbtest \
        --mysql-socket="$d/s" --tables="$SB_TABLES" --table-size="$SB_TABLE_SIZE" "$@"
}
# The number after "transactions:" ... "(X per sec.)", and the count before it.
sb_tps() { sed -n 's/.*transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p' "$1"; }
sb_tx() { sed -n 's/.*transactions: *\([0-9]*\) *(.*/\1/p' "$1"; }

if want mariadb || want latency; then
    echo
    echo "== MariaDB: install, start without libvmsrs, with containment only, and with monitored ranges"
    M0=$WORK/m-without MC=$WORK/m-contain M1=$WORK/m-with
    mkdir -p "$M0" "$MC" "$M1"
    mariadb_install "$M0"
    cp -a "$M0/data" "$MC/data"
    cp -a "$M0/data" "$M1/data"
    declare -A MDIR=([without]=$M0 [contain]=$MC [with]=$M1) MPID=()
    for k in "${KINDS[@]}"; do
        mariadb_start "${MDIR[$k]}" $k
        MPID[$k]=$PID
        sql "${MDIR[$k]}" "CREATE FUNCTION vmsrs_fault RETURNS INTEGER SONAME 'udf_fault.so'"
    done
    for k in contain with; do
        grep -q libvmsrs "/proc/${MPID[$k]}/maps" || { echo "bench_servers.sh: libvmsrs.so not mapped in mariadbd ($k)" >&2; exit 1; }
    done
    grep -q libvmsrs "/proc/${MPID[without]}/maps" && { echo "bench_servers.sh: libvmsrs.so mapped in the plain mariadbd" >&2; exit 1; }
    grep -q vmsrs-watch "/proc/${MPID[with]}/maps" || { echo "bench_servers.sh: no monitored range armed in mariadbd (with)" >&2; exit 1; }
    grep -q vmsrs-watch "/proc/${MPID[contain]}/maps" && { echo "bench_servers.sh: a monitored range armed in mariadbd (contain)" >&2; exit 1; }
    echo "mariadbd without: pid ${MPID[without]}, containment only: pid ${MPID[contain]}, with monitored ranges: pid ${MPID[with]}"
fi

if want mariadb; then
    for k in "${KINDS[@]}"; do
        sql "${MDIR[$k]}" "CREATE DATABASE sbtest"
        sb "${MDIR[$k]}" --threads=4 oltp_read_write prepare >"$OUT/sysbench-prepare-$k.txt" 2>&1 ||
            { cat "$OUT/sysbench-prepare-$k.txt" >&2; exit 1; }
    done
    echo "sysbench tables: $SB_TABLES x $SB_TABLE_SIZE rows, prepared once per server"
    for wl in oltp_read_only oltp_read_write; do
        echo
        echo "== MariaDB sysbench $wl, $SB_THREADS threads, $ROUNDS x ${SB_TIME} s per server, alternated"
        declare -A TPS=([without]="" [contain]="" [with]="") CPU=([without]="" [contain]="" [with]="") R1=() C1=()
        TP_C="" TP_W="" TP_WC="" CP_C="" CP_W="" CP_WC=""
        # One short warm-up run each (buffer pool, thread cache), not counted.
        for k in "${KINDS[@]}"; do
            sb "${MDIR[$k]}" --threads="$SB_THREADS" --time=$((SB_TIME / 4 + 1)) "$wl" run >/dev/null 2>&1 || true
        done
        for r in $(seq "$ROUNDS"); do
            for k in $(kind_order "$r"); do
                f=$OUT/sysbench-$wl-$k-$r.txt
                c0=$(group_ticks "${MPID[$k]}")
                sb "${MDIR[$k]}" --threads="$SB_THREADS" --time="$SB_TIME" --report-interval=0 "$wl" run >"$f" 2>&1 ||
                    { cat "$f" >&2; echo "bench_servers.sh: sysbench failed ($k)" >&2; exit 1; }
                c=$(cpu_us $(($(group_ticks "${MPID[$k]}") - c0)) "$(sb_tx "$f")")
                t=$(sb_tps "$f")
                [[ -n $t ]] || { cat "$f" >&2; exit 1; }
                TPS[$k]+="$t " R1[$k]=$t CPU[$k]+="$c " C1[$k]=$c
                printf '  round %d %-8s %10s tps %8s CPU µs/transaction  (%s)\n' "$r" "$k" "$t" "$c" \
                    "$(grep -o 'ignored errors: *[0-9]*' "$f" | head -n1 | tr -s ' ')"
            done
            round_ratios
        done
        summarize "MariaDB sysbench $wl" tps "${TPS[without]}" "${TPS[contain]}" "${TPS[with]}" \
            "$TP_C" "$TP_W" "$TP_WC" "drop <= 2 %"
        summarize "MariaDB $wl mariadbd CPU" µs/transaction "${CPU[without]}" "${CPU[contain]}" "${CPU[with]}" \
            "$CP_C" "$CP_W" "$CP_WC" "rise <= 2 %"
    done
    for k in "${KINDS[@]}"; do
        kill -0 "${MPID[$k]}" 2>/dev/null || { echo "bench_servers.sh: mariadbd ($k) died" >&2; exit 1; }
    done
fi

# ---------------------------------------------------------------------------------------
# Apache httpd
# ---------------------------------------------------------------------------------------
apache_conf() { # DIR PORT MODULE
    cat <<EOF
# Generated by scripts/bench_servers.sh: a private httpd, nothing from /etc/apache2.
ServerRoot "$1"
ServerName 127.0.0.1
Listen 127.0.0.1:$2
PidFile "$1/httpd.pid"
ErrorLog "$1/error.log"
LogLevel warn
DefaultRuntimeDir "$1"
LoadModule mpm_event_module $APACHE_MODULES/mod_mpm_event.so
LoadModule authz_core_module $APACHE_MODULES/mod_authz_core.so
LoadModule vmsrs_fault_module $3
User www-data
Group www-data
# As in the tests (tests/servers/mod.rs): one child of 25 threads; keep-alive on for wrk.
StartServers 1
ServerLimit 1
ThreadLimit 25
ThreadsPerChild 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 50
MaxConnectionsPerChild 0
Timeout 10
KeepAlive On
MaxKeepAliveRequests 0
DocumentRoot "$1"
<Location "/">
    SetHandler vmsrs-fault
    Require all granted
</Location>
EOF
}
# http_ok PORT: GET /ok answers 200 (a subshell: a failed /dev/tcp redirection ends only it).
http_ok() (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET /ok HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    timeout 5 head -n1 <&3 | grep -q ' 200 '
)
# apache_start DIR KIND: sets PID and APORT.
apache_start() {
    local d=$1 env attempt
    read -ra env <<<"$(preload_env "$2" "$ROOT/preload/apache2.env")"
    for attempt in 1 2 3; do
        APORT=$(free_port)
        apache_conf "$d" "$APORT" "$OUT/mod_vmsrs_fault.so" >"$d/httpd.conf"
        rm -f "$d/error.log"
        spawn "$d/apache2.out" env "${env[@]}" "$APACHE2" -f "$d/httpd.conf" -DFOREGROUND
        for _ in $(seq 300); do
            kill -0 "$PID" 2>/dev/null || break
            http_ok "$APORT" 2>/dev/null && return 0
            sleep 0.1
        done
        if grep -qs 'Address already in use' "$d/error.log" "$d/apache2.out" && ((attempt < 3)); then
            stop "$PID"; continue
        fi
        cat "$d/apache2.out" "$d/error.log" >&2 || true
        echo "bench_servers.sh: apache2 ($2) did not start" >&2; exit 1
    done
}

if want apache; then
    echo
    echo "== Apache httpd: build mod_vmsrs_fault, start without libvmsrs, with containment only, and with monitored ranges"
    (
        w=$WORK/apxs
        mkdir -p "$w" && cp c-examples/servers/mod_vmsrs_fault.c "$w/" && cd "$w" &&
            apxs -Wc,-Wall -Wc,-Wextra -Wc,-Werror -c mod_vmsrs_fault.c >apxs.log 2>&1 ||
            { cat apxs.log >&2; exit 1; }
        cp .libs/mod_vmsrs_fault.so "$OUT/mod_vmsrs_fault.so"
    )
    declare -A ADIR=([without]=$WORK/a-without [contain]=$WORK/a-contain [with]=$WORK/a-with) APID=() APORTS=()
    for k in "${KINDS[@]}"; do
        mkdir -p "${ADIR[$k]}" && chmod 755 "${ADIR[$k]}"
        apache_start "${ADIR[$k]}" $k
        APID[$k]=$PID APORTS[$k]=$APORT
    done
    echo "httpd without: port ${APORTS[without]}, containment only: port ${APORTS[contain]}, with monitored ranges: port ${APORTS[with]}"
    echo
    echo "== Apache wrk -t2 -c$WRK_CONNS -d${WRK_TIME}s /ok, $ROUNDS rounds per server, alternated"
    declare -A TPS=([without]="" [contain]="" [with]="") CPU=([without]="" [contain]="" [with]="") R1=() C1=()
    TP_C="" TP_W="" TP_WC="" CP_C="" CP_W="" CP_WC=""
    for k in "${KINDS[@]}"; do # warm-up, not counted
        timeout 60 wrk -t2 -c"$WRK_CONNS" -d2s "http://127.0.0.1:${APORTS[$k]}/ok" >/dev/null 2>&1 || true
    done
    for r in $(seq "$ROUNDS"); do
        for k in $(kind_order "$r"); do
            f=$OUT/wrk-$k-$r.txt
            c0=$(group_ticks "${APID[$k]}")
            timeout $((WRK_TIME + 60)) wrk -t2 -c"$WRK_CONNS" -d"${WRK_TIME}s" "http://127.0.0.1:${APORTS[$k]}/ok" >"$f" 2>&1 ||
                { cat "$f" >&2; echo "bench_servers.sh: wrk failed ($k)" >&2; exit 1; }
            t=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$f")
            [[ -n $t ]] || { cat "$f" >&2; exit 1; }
            n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$f")
            c=$(cpu_us $(($(group_ticks "${APID[$k]}") - c0)) "$((n / 1000))")
            if grep -qE 'Non-2xx|Socket errors' "$f"; then
                echo "  round $r $k: wrk reports errors:"; grep -E 'Non-2xx|Socket errors' "$f"
            fi
            TPS[$k]+="$t " R1[$k]=$t CPU[$k]+="$c " C1[$k]=$c
            printf '  round %d %-8s %10s requests/s %8s httpd CPU µs/1000 requests\n' "$r" "$k" "$t" "$c"
        done
        round_ratios
    done
    summarize "Apache wrk /ok" requests/s "${TPS[without]}" "${TPS[contain]}" "${TPS[with]}" \
        "$TP_C" "$TP_W" "$TP_WC" "drop <= 2 %"
    summarize "Apache /ok httpd CPU" "µs/1000 requests" "${CPU[without]}" "${CPU[contain]}" "${CPU[with]}" \
        "$CP_C" "$CP_W" "$CP_WC" "rise <= 2 %"
    for k in "${KINDS[@]}"; do stop "${APID[$k]}"; done
fi

# ---------------------------------------------------------------------------------------
# Fault to answer
# ---------------------------------------------------------------------------------------
lat_field() { sed -n "s/^$2 .* $3=\([0-9.]*\).*/\1/p" "$1"; }
if want latency; then
    echo
    echo "== fault to answer: dropin_server (unwind), $LAT_N pairs of SET / CRASH on one connection"
    D=$WORK/dropin
    mkdir -p "$D"
    spawn "$D/out" env LD_PRELOAD="$LIB" VMSRS_ENV_FILE="$ROOT/c-examples/dropin_server.env" "$OUT/dropin_server" 0
    DPID=$PID
    for _ in $(seq 100); do grep -qs 'listening on' "$D/out" && break; sleep 0.1; done
    port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$D/out")
    [[ -n $port ]] || { cat "$D/out" >&2; exit 1; }
    f=$OUT/latency-dropin.txt
    timeout 300 "$OUT/bench_servers_latency" tcp "$port" "$LAT_N" >"$f" 2>&1 || { cat "$f" >&2; exit 1; }
    sed 's/^/  /' "$f"
    n=$(grep -c 'SUMMARY: vmsrs: SIGSEGV contained' "$D/out" || true)
    echo "  libvmsrs reports: $n contained faults (expected $((LAT_N + 10)), with warm-up)"
    ((n == LAT_N + 10)) || { echo "bench_servers.sh: not every fault was contained" >&2; exit 1; }
    stop "$DPID"
    RESULTS+=("dropin_server: SET (without) vs CRASH (with), median us|$(lat_field "$f" normal median_us)|-|$(lat_field "$f" fault median_us)|-|+$(sed -n 's/^delta_median_us=//p' "$f") us|-|contained <= 100 us after the signal")

    echo
    echo "== fault to answer: mariadbd (oblivious), $LAT_N pairs of vmsrs_fault(0) / vmsrs_fault(1, 151), fresh connections"
    f=$OUT/latency-mariadb.txt
    before=$(grep -c 'SUMMARY: vmsrs: SIGSEGV contained' "$M1/mariadbd.log" || true)
    timeout 600 "$OUT/bench_servers_latency" mysql "$M1/s" "$LAT_N" >"$f" 2>&1 || { cat "$f" >&2; tail -n 20 "$M1/mariadbd.log" >&2; exit 1; }
    sed 's/^/  /' "$f"
    after=$(grep -c 'SUMMARY: vmsrs: SIGSEGV contained' "$M1/mariadbd.log" || true)
    echo "  libvmsrs reports: $((after - before)) contained faults (expected $((LAT_N + 10)), with warm-up)"
    kill -0 "${MPID[with]}" && [[ $(sql "$M1" "SELECT vmsrs_fault(0)") == 0 ]] ||
        { echo "bench_servers.sh: mariadbd did not survive the faults" >&2; exit 1; }
    ((after - before == LAT_N + 10)) || { echo "bench_servers.sh: not every fault was contained" >&2; exit 1; }
    RESULTS+=("mariadbd: vmsrs_fault(0) (without) vs (1) (with), median us|$(lat_field "$f" normal median_us)|-|$(lat_field "$f" fault median_us)|-|+$(sed -n 's/^delta_median_us=//p' "$f") us|-|contained <= 100 us after the signal")
fi
if want mariadb || want latency; then
    for k in "${KINDS[@]}"; do stop "${MPID[$k]}"; done
fi

# ---------------------------------------------------------------------------------------
# Lock tracking
# ---------------------------------------------------------------------------------------
if want locks; then
    echo
    if [[ -f c-examples/bench_locks.c ]]; then
        echo "== lock tracking: c-examples/bench_locks.c (uncontended lock/unlock pair, preloaded vs plain)"
        gcc "${CFLAGS[@]}" c-examples/bench_locks.c -o "$OUT/bench_locks"
        "$OUT/bench_locks" -l "$LIB" 2>"$OUT/bench_locks.stderr" | tee "$OUT/bench_locks.txt" | sed 's/^/  /'
        row() { sed -n "s/^  $1 *plain *\([0-9.]*\) ns *libvmsrs *\([0-9.]*\) ns *\(+ *[0-9.]*\) ns *ratio *\([0-9.]*x\).*/\1|-|\2|-|\4 (\3 ns)/p" "$OUT/bench_locks.txt"; }
        RESULTS+=("lock tracking: pthread_mutex lock/unlock pair, ns|$(row pthread_mutex)|-|-")
        RESULTS+=("lock tracking: pthread_spin lock/unlock pair, ns|$(row pthread_spin)|-|-")
    else
        echo "== lock tracking: not measured (c-examples/bench_locks.c is not in this tree)"
        RESULTS+=("lock tracking cost|-|-|-|-|not measured|-|-")
    fi
fi

echo
echo "== results (DESIGN §8; machine: $(nproc) CPUs, load average now $(cut -d' ' -f1-3 /proc/loadavg))"
{
    echo "measure|without|contain|with|contain/without|with/without, or delta|with/contain|bar"
    for r in "${RESULTS[@]}"; do echo "$r"; done
} | awk -F'|' '{ printf "%-56s %10s %10s %10s %-18s %-22s %-18s %s\n", $1, $2, $3, $4, $5, $6, $7, $8 }' | tee "$OUT/summary.txt"
echo "full outputs in $OUT/"
