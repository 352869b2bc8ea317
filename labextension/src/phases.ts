/**
 * Folding a sandbox's progress events into one row per startup phase, with
 * durations: what the panel draws while a sandbox starts.
 */
import { IProgressEvent } from './api';

/** Startup phases of a sandbox with Docker inside, in order (the core's DOCKER_PHASES). */
export const DOCKER_PHASES = [
  'image_check',
  'sandbox_start',
  'booted',
  'dockerd_present',
  'cgroups',
  'storage',
  'dockerd_started',
  'socket',
  'answering',
  'ready'
];

/** Startup phases of a plain sandbox (the core's PLAIN_PHASES). */
export const PLAIN_PHASES = ['image_check', 'sandbox_start', 'booted', 'ready'];

/** Startup phases of a fork, a sandbox restored from a snapshot (the core's FORK_PHASES). */
export const FORK_PHASES = ['image_check', 'sandbox_start', 'restored', 'ready'];

/** Titles for phases whose events have not arrived yet (the core's PHASE_LABELS). */
const LABELS: { [phase: string]: string } = {
  image_check: 'Image found',
  sandbox_start: 'Sandbox container started',
  booted: 'Sandbox booted (gVisor)',
  dockerd_present: 'dockerd found in image',
  cgroups: 'cgroups prepared',
  storage: 'Disk store mounted',
  dockerd_started: 'dockerd started',
  socket: 'Docker socket up',
  answering: 'Daemon answering',
  restored: 'Restored from snapshot',
  ready: 'Ready'
};

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
 * @param docker - whether the sandbox has Docker inside
 * @param events - its progress events, in arrival order
 * @param nowSeconds - the current Unix time, for the running phase's clock
 */
export function phaseRows(docker: boolean, events: IProgressEvent[], nowSeconds: number): IPhaseRow[] {
  // One `load:IMAGE` phase per preloaded image, between answering and ready.
  const loads = [...new Set(events.map(e => e.phase).filter(p => p.startsWith('load:')))];
  const restored = events.some(e => e.phase === 'restored');
  const order = restored ? FORK_PHASES : docker ? [...DOCKER_PHASES.slice(0, -1), ...loads, 'ready'] : PLAIN_PHASES;
  const rows: IPhaseRow[] = order.map(phase => ({
    phase,
    label: LABELS[phase] ?? phase,
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

/** Seconds as the panel shows them: `0.42 s`, `12.3 s`, `4 min 05 s`, `2 h 03 min`. */
export function formatSeconds(seconds: number | null): string {
  if (seconds === null || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(2)} s`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 3600) {
    const s = Math.floor(seconds % 60);
    return `${Math.floor(seconds / 60)} min ${s.toString().padStart(2, '0')} s`;
  }
  const m = Math.floor((seconds % 3600) / 60);
  return `${Math.floor(seconds / 3600)} h ${m.toString().padStart(2, '0')} min`;
}
