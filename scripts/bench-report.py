#!/usr/bin/env python3
"""bench-report.py - BENCHMARKS.md tables from devcluster-bench JSON lines and corosync harness output.

usage: bench-report.py --ours FILE --corosync DIR [--machine FILE] [--commands FILE] [--out BENCHMARKS.md]
  FILE: JSON lines of devcluster-bench (all runs, all node counts).
  DIR:  the copied corosync harness (its out/udpN and out/fo-udpN hold cpgbench lines and result.txt).
Each figure: median [min-max] over repetitions (as corosync's summarize.py).
"""
import argparse, glob, json, os, re, statistics
import benchmarks_md

def fmt(values, nd=0):
    if not values:
        return 'n/a'
    f = lambda x: f'{x:,.{nd}f}'
    return f'{f(statistics.median(values))} [{f(min(values))}-{f(max(values))}]'

def med(values):
    return statistics.median(values) if values else None

# ---- ours -------------------------------------------------------------------------------------
def load_ours(path):
    runs = {}  # (nodes, trial) -> metric -> [values]
    for line in open(path):
        line = line.strip()
        if not line.startswith('{'):
            continue
        r = json.loads(line)
        n, sc = r['nodes'], r['scenario']
        if sc == 'throughput':
            trial = f"{'sat1' if r['senders'] == 1 else 'satall' if r['senders'] == n else 'sat' + str(r['senders'])}-{r['size']}"
            if r['rate']:
                trial = f"rate{r['rate']}-{r['size']}-s{r['senders']}"
        elif sc == 'latency':
            trial = f"rate{r['rate']}-{r['size']}"
        else:
            trial = sc
        if r['value'] == -1:
            continue
        runs.setdefault((n, trial), {}).setdefault(r['metric'], []).append(r['value'])
    return runs

# ---- corosync ---------------------------------------------------------------------------------
def parse_cpg(f):
    m = re.search(r'^node=.*$', open(f).read(), re.M)
    return dict(kv.split('=', 1) for kv in m.group(0).split()) if m else None

def load_corosync(base, tag):
    trials = {}
    for td in sorted(glob.glob(f'{base}/out/{tag}/*-r*')):
        name = os.path.basename(td).rsplit('-r', 1)[0]
        rows = [parse_cpg(f) for f in sorted(glob.glob(td + '/n*.txt'))]
        ok = all(rows) and bool(rows)
        rows = [r for r in rows if r]
        if not rows:
            continue
        lr = [r for r in rows if r['mode'] == 'recv'] if name.startswith(('rate', 'sat1')) else rows
        t = trials.setdefault(name, {'delivered_msgs_per_s': [], 'mb_per_s': [], 'latency_p50_ms': [], 'latency_p99_ms': [], 'order_identical': []})
        t['delivered_msgs_per_s'].append(statistics.median(float(r['deliv_rate']) for r in rows))
        t['mb_per_s'].append(statistics.median(float(r['deliv_MBps']) for r in rows))
        if lr:
            t['latency_p50_ms'].append(statistics.median(float(r['rlat_us_p50']) for r in lr) / 1000)
            t['latency_p99_ms'].append(statistics.median(float(r['rlat_us_p99']) for r in lr) / 1000)
        same = len({r['hash'] for r in rows}) == 1 and len({r['delivered'] for r in rows}) == 1
        t['order_identical'].append(1 if ok and same and sum(int(r['fifo_err']) for r in rows) == 0 else 0)
    fo = {'kill_detected_s': [], 'restart_to_member_s': []}
    for f in sorted(glob.glob(f'{base}/out/fo-{tag}/kill-r*/result.txt')):
        kv = dict(x.split('=') for x in open(f).read().split())
        fo['kill_detected_s'].append(float(kv['totem_down_s']))
        fo['restart_to_member_s'].append(float(kv['totem_back_s']))
    if fo['kill_detected_s']:
        trials['failover'] = fo
    return trials

# ---- report -----------------------------------------------------------------------------------
TRIALS = ['sat1-64', 'sat1-1024', 'sat1-8192', 'satall-64', 'satall-1024', 'satall-8192', 'rate1000-64', 'rate1000-1024']

def table(n, ours, coro):
    out = [f'## {n} nodes, udp multicast, no crypto, default token\n',
           '| trial | corosync msg/s | devcluster msg/s | ratio | corosync MB/s | devcluster MB/s | corosync p50 / p99 ms | devcluster p50 / p99 ms | order identical (coro / ours) |',
           '|---|---|---|---|---|---|---|---|---|']
    for trial in TRIALS:
        o, c = ours.get((n, trial), {}), coro.get(trial, {})
        if not o and not c:
            continue
        mo, mc = med(o.get('delivered_msgs_per_s', [])), med(c.get('delivered_msgs_per_s', []))
        ratio = f'{mo / mc:.2f}x' if mo and mc else 'n/a'
        order = lambda t: 'n/a' if not t.get('order_identical') else ('yes' if all(v == 1 for v in t['order_identical']) else 'NO')
        out.append(f"| {trial} | {fmt(c.get('delivered_msgs_per_s'))} | {fmt(o.get('delivered_msgs_per_s'))} | {ratio} | "
                   f"{fmt(c.get('mb_per_s'), 2)} | {fmt(o.get('mb_per_s'), 2)} | {fmt(c.get('latency_p50_ms'), 2)} / {fmt(c.get('latency_p99_ms'), 2)} | "
                   f"{fmt(o.get('latency_p50_ms'), 2)} / {fmt(o.get('latency_p99_ms'), 2)} | {order(c)} / {order(o)} |")
    fo, cf = ours.get((n, 'failover'), {}), coro.get('failover', {})
    out += ['', '| failover (kill -9 of the last node) | corosync s | devcluster s |', '|---|---|---|',
            f"| failure detected on node 1 | {fmt(cf.get('kill_detected_s'), 2)} | {fmt(fo.get('kill_detected_s'), 2)} |",
            f"| back in membership after restart (node 1) | {fmt(cf.get('restart_to_member_s'), 2)} | {fmt(fo.get('restart_to_member_s'), 3)} |",
            f"| restarted node sees all {n} itself | n/a | {fmt(fo.get('restart_self_member_s'), 3)} |",
            f"| effective token (ms) | | {fmt(fo.get('token_ms'))} |"]
    idle, dev, cl = ours.get((n, 'idle'), {}), ours.get((n, 'devstate'), {}), ours.get((n, 'client'), {})
    out += ['', '| devcluster only | value |', '|---|---|',
            f"| idle CPU % of one core (max over daemons) | {fmt(idle.get('idle_cpu_percent'), 2)} |",
            f"| idle VmRSS MiB (max) | {fmt(idle.get('rss_mb'), 1)} |",
            f"| devstate_set -> device push p50 / p99 ms (200/s) | {fmt(dev.get('devstate_p50_ms'), 2)} / {fmt(dev.get('devstate_p99_ms'), 2)} |",
            f"| devstate pushes missing | {fmt(dev.get('devstate_events_missing'))} |",
            f"| client: event_publish 64 B accepted req/s | {fmt(cl.get('accepted_requests_per_s'))} |",
            f"| client: delivered events/s at node 2 | {fmt(cl.get('delivered_events_per_s'))} |", '']
    return out

def load_paired(path):
    """scripts/ratio-check.sh's lines, `STACK NODES SIZE MSGS_PER_S`, as {(stack, size, nodes): [values]}.
    A run that produced no figure (written as 0) is left out rather than counted as a median's 0."""
    runs = {}
    for line in open(path):
        fields = line.split()
        if len(fields) != 4 or fields[0] not in ('corosync', 'devcluster') or float(fields[3]) <= 0:
            continue
        runs.setdefault((fields[0], int(fields[2]), int(fields[1])), []).append(float(fields[3]))
    return runs

def paired_share(paired, stack, size):
    three, five = med(paired.get((stack, size, 3), [])), med(paired.get((stack, size, 5), []))
    return five / three if three and five else None

def paired_table(paired):
    out = ['## Five-node shares, paired (`scripts/ratio-check.sh`)\n',
           'One sender; each stack\'s three- and five-node runs minutes apart at most (ours alternate), '
           'so that the VM\'s drift over the matrix does not enter the shares. msg/s per run, in order.\n',
           '| stack | size | 3 nodes | 5 nodes | 5/3 of the medians |', '|---|---|---|---|---|']
    for stack in ('corosync', 'devcluster'):
        for size in (64, 1024):
            three, five = paired.get((stack, size, 3), []), paired.get((stack, size, 5), [])
            share = paired_share(paired, stack, size)
            out.append(f"| {stack} | {size} B | {', '.join(f'{v:,.0f}' for v in three)} | {', '.join(f'{v:,.0f}' for v in five)} | "
                       f"{'n/a' if share is None else f'{share:.3f}'} |")
    return out + ['']

def targets(ours, coro3, coro5, paired=None):
    def o(n, t, m): return med(ours.get((n, t), {}).get(m, []))
    def c(co, t, m): return med(co.get(t, {}).get(m, []))
    rows = []
    def add(name, ok, detail):
        detail = re.sub(r'\d+\.\d{3,}', lambda m: f'{float(m.group(0)):.3g}' if float(m.group(0)) < 100 else f'{float(m.group(0)):,.0f}', detail)
        rows.append(f"| {name} | {'n/a' if ok is None else 'met' if ok else 'NOT met'} | {detail} |")
    def safe(f):
        try: return f()
        except TypeError: return None
    a, b = o(3, 'sat1-64', 'delivered_msgs_per_s'), c(coro3, 'sat1-64', 'delivered_msgs_per_s')
    add('64 B one sender >= 3x corosync msg/s', safe(lambda: a >= 3 * b), f'{a} vs {b}')
    a, b = o(3, 'sat1-1024', 'mb_per_s'), c(coro3, 'sat1-1024', 'mb_per_s')
    add('1 KiB one sender >= 2x corosync MB/s', safe(lambda: a >= 2 * b), f'{a} vs {b}')
    a, p = o(3, 'satall-8192', 'mb_per_s'), o(3, 'satall-8192', 'latency_p99_ms')
    add('8 KiB all senders >= 40 MB/s, p99 < 100 ms', safe(lambda: a >= 40 and p < 100), f'{a} MB/s, p99 {p} ms')
    a, b, p = o(3, 'rate1000-64', 'latency_p50_ms'), c(coro3, 'rate1000-64', 'latency_p50_ms'), o(3, 'rate1000-64', 'latency_p99_ms')
    add('1000 msg/s: p50 <= corosync, p99 < 1 ms', safe(lambda: a <= b and p < 1), f'p50 {a} vs {b} ms, p99 {p} ms')
    a, b = o(3, 'failover', 'kill_detected_s'), c(coro3, 'failover', 'kill_detected_s')
    add('kill -9 detection no slower (same token)', safe(lambda: a <= b), f'{a} vs {b} s')
    a = o(3, 'failover', 'restart_to_member_s')
    add('restart to member < 0.5 s', safe(lambda: a < 0.5), f'{a} s')
    a, r = o(3, 'idle', 'idle_cpu_percent'), o(3, 'idle', 'rss_mb')
    add('idle < 1% CPU and < 30 MB RSS per daemon', safe(lambda: a < 1 and r < 30), f'{a} %, {r} MiB')
    a = o(3, 'client', 'delivered_events_per_s')
    add('one client carries >= 50,000 events/s', safe(lambda: a >= 50000), f'{a} events/s delivered at node 2')
    for t in ['sat1-64', 'sat1-1024', 'satall-64', 'satall-1024']:
        o3, o5 = o(3, t, 'delivered_msgs_per_s'), o(5, t, 'delivered_msgs_per_s')
        c3, c5 = c(coro3, t, 'delivered_msgs_per_s'), c(coro5, t, 'delivered_msgs_per_s')
        matrix = f'devcluster 5/3 = {safe(lambda: round(o5 / o3, 2))}, corosync 5/3 = {safe(lambda: round(c5 / c3, 2))}'
        size = int(t.split('-')[1])
        po, pc = (paired_share(paired, 'devcluster', size), paired_share(paired, 'corosync', size)) if paired and t.startswith('sat1') else (None, None)
        if po is not None and pc is not None:
            # One sender: judged on the paired runs (see the section of that name); the matrix's shares for reference.
            add(f'5 nodes {t}: falls no more than corosync', po >= pc,
                f'paired: devcluster 5/3 = {po:.3f}, corosync 5/3 = {pc:.3f} (matrix: {matrix})')
        else:
            add(f'5 nodes {t}: falls no more than corosync', safe(lambda: o5 / o3 >= c5 / c3), matrix)
    return ['## Targets (3 nodes unless stated; medians of this run)\n', '| target | result | measured |', '|---|---|---|'] + rows + ['']

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ours', required=True); ap.add_argument('--corosync', required=True)
    ap.add_argument('--machine'); ap.add_argument('--commands'); ap.add_argument('--out', default='BENCHMARKS.md')
    ap.add_argument('--paired', help="scripts/ratio-check.sh's raw figures (--out FILE)")
    a = ap.parse_args()
    ours = load_ours(a.ours)
    coro = {n: load_corosync(a.corosync, f'udp{n}') for n in (3, 5)}
    lines = ['# devcluster vs corosync 3: benchmarks\n',
             'Generated by `scripts/bench-compare.sh` (both stacks on the same machine, back to back). '
             'Each cell: median [min-max] over repetitions. Throughput = data messages delivered per node / (last - first delivery), '
             'median over nodes; latency = one-way, remote deliveries only, per-node p50/p99, median over nodes. '
             'Reproduce (as root, about 25 minutes): `scripts/bench-compare.sh --reps 3 --duration 5`.\n']
    if a.machine and os.path.exists(a.machine):
        lines += ['## Machine\n', '```', open(a.machine).read().rstrip(), '```', '']
    if a.commands and os.path.exists(a.commands):
        lines += ['## Commands\n', '```', open(a.commands).read().rstrip(), '```', '']
    paired = load_paired(a.paired) if a.paired and os.path.exists(a.paired) else None
    lines += targets(ours, coro[3], coro[5], paired)
    for n in (3, 5):
        if any(k[0] == n for k in ours) or coro[n]:
            lines += table(n, ours, coro[n])
    if paired:
        lines += paired_table(paired)
    # The hand-written analysis (what limits us, how the figures were reached) follows the tables.
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'Benchmarks', 'ANALYSIS.md')
    if os.path.exists(analysis):
        lines += [open(analysis).read().rstrip(), '']
    lines += ['## Raw data\n', 'Kept on the machine that ran the script (`.build-bench/` is not committed):', '',
              f'- devcluster: `{a.ours}` (one JSON line per figure)',
              f'- corosync: `{a.corosync}/out/` (cpgbench lines per node: `udpN/TRIAL-rREP/n*.txt`; failover: `fo-udpN/kill-rREP/result.txt`)']
    if paired:
        lines += [f'- paired five-node shares: `{a.paired}`']
    lines += ['']
    text = '\n'.join(lines)
    # Keep the section scripts/asterisk-bench-report.py maintains (another run, another script).
    try:
        kept = benchmarks_md.section(open(a.out).read())
    except FileNotFoundError:
        kept = None
    if kept:
        text = benchmarks_md.place(text, kept)
    open(a.out, 'w').write(text)
    print(f'wrote {a.out}')

main()
