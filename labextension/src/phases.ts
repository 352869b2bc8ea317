/**
 * Folding a sandbox's progress events into one row per startup phase, with
 * durations: what the panel draws while a sandbox starts.  The phases and
 * their titles come from the server (`GET /sandbox/api/phases`).
 */
import { IPhaseCatalog, IProgressEvent } from './api';

/** One row of the phase list. */
export interface IPhaseRow {
  phase: string;
  label: string;
  status: 'pending' | 'running' | 'done' | 'failed';
  /** Seconds it took (done or failed), or has taken so far (running). */
  seconds: number | null;
  message: string;
  detail: string;
}

/**
 * One row per expected phase, in order, from the events seen so far.
 *
 * @param catalog - the server's phase lists and titles (no rows until it is read)
 * @param docker - whether the sandbox has Docker inside
 * @param events - its progress events, in arrival order
 * @param nowSeconds - the current Unix time, for the running phase's clock
 */
export function phaseRows(
  catalog: IPhaseCatalog | null,
  docker: boolean,
  events: IProgressEvent[],
  nowSeconds: number
): IPhaseRow[] {
  if (!catalog) {
    return [];
  }
  const prefix = catalog.image_prefix;
  // One `load:IMAGE` phase per preloaded image, just before ready.
  const loads = [...new Set(events.map(e => e.phase).filter(p => p.startsWith(prefix)))];
  // A fork reports a phase only forks have (restored from the snapshot, instead of booting).
  const restored = events.some(e => catalog.fork.includes(e.phase) && !catalog.docker.includes(e.phase));
  const order = restored
    ? catalog.fork
    : docker
      ? [...catalog.docker.slice(0, -1), ...loads, ...catalog.docker.slice(-1)]
      : catalog.plain;
  const rows: IPhaseRow[] = order.map(phase => ({
    phase,
    label:
      catalog.labels[phase] ?? (phase.startsWith(prefix) ? catalog.image_label + phase.slice(prefix.length) : phase),
    status: 'pending',
    seconds: null,
    message: '',
    detail: ''
  }));
  let lastEnd: IProgressEvent | null = null;
  let stopped = false; // after a failure or the running phase, later phases stay pending
  for (const row of rows) {
    const mine = events.filter(e => e.phase === row.phase);
    const start = mine.find(e => e.state === 'started');
    const end = mine.find(e => e.state !== 'started');
    const label = mine.find(e => e.label)?.label;
    if (label) {
      row.label = label;
    }
    const last = mine[mine.length - 1];
    if (last) {
      row.message = last.message;
      row.detail = mine.find(e => e.detail)?.detail ?? '';
    }
    const began = start ?? lastEnd;
    if (end) {
      row.status = end.state === 'failed' ? 'failed' : 'done';
      row.seconds = began ? secondsBetween(began, end) : null;
      lastEnd = end;
      stopped = stopped || end.state === 'failed';
    } else if (!stopped && began) {
      row.status = 'running';
      row.seconds = Math.max(0, nowSeconds - began.time);
      stopped = true;
    }
  }
  // Phases only the creating process sees (image_check for a sandbox made by
  // another process) have no events although later ones finished: leave them out.
  const lastEndIndex = Math.max(
    rows.map(r => r.status).lastIndexOf('done'),
    rows.map(r => r.status).lastIndexOf('failed')
  );
  // A phase followed by a finished one is over, even if its own end was not seen.
  rows.forEach((row, index) => {
    if (index < lastEndIndex && row.status === 'running') {
      row.status = 'done';
      row.seconds = null;
    }
  });
  return rows.filter((row, index) => !(index < lastEndIndex && row.status === 'pending'));
}

/**
 * Seconds from one event to another.  Events about one sandbox come from two
 * processes (the creator and the server's watcher) whose `elapsed` clocks
 * start a few milliseconds apart, so the sandbox kernel's own uptime, the
 * same for both, is used where there is one: the first phase reported from
 * inside (booted) took its uptime, counted from the sandbox's boot.
 */
function secondsBetween(from: IProgressEvent, to: IProgressEvent): number {
  if (to.uptime !== null) {
    return Math.max(0, to.uptime - (from.uptime ?? 0));
  }
  return Math.max(0, to.elapsed - from.elapsed);
}

/**
 * Seconds as the panel shows them: `0.42 s`, `12.34 s`, `4 min 05 s`, `2 h 03 min`.  Under a
 * minute with two decimals, as the CLI and the notebook print phase times and "ready in".
 */
export function formatSeconds(seconds: number | null): string {
  if (seconds === null || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(2)} s`;
  }
  if (seconds < 3600) {
    const s = Math.floor(seconds % 60);
    return `${Math.floor(seconds / 60)} min ${s.toString().padStart(2, '0')} s`;
  }
  const m = Math.floor((seconds % 3600) / 60);
  return `${Math.floor(seconds / 3600)} h ${m.toString().padStart(2, '0')} min`;
}

/**
 * "ready in 1.36 s": the create's duration as the core's `progress.ready_text` prints it (two
 * decimals of the creator's `ready_seconds`), or '' when the server does not know it.
 */
export function readyIn(seconds: number | null | undefined): string {
  return typeof seconds === 'number' && isFinite(seconds) ? `ready in ${seconds.toFixed(2)} s` : '';
}
