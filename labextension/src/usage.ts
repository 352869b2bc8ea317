/**
 * Live CPU and memory of the sandboxes (`GET /sandbox/api/stats`), read every few
 * seconds, and only while someone looks: the panel is visible, the page is
 * shown and some sandbox is running (each read costs the server a second of
 * the engine's sampling).
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from './api';
import { SandboxModel } from './model';

/** Seconds between two reads while the panel is visible. */
const USAGE_POLL_SECONDS = 5;

/** One sandbox's resource use (`Usage.to_dict()` on the server). */
export interface IUsage {
  name: string;
  /** Percent of one CPU (150 is one and a half). */
  cpu_percent: number;
  cpu_limit: number | null;
  /** Bytes in use, and the bytes it may use. */
  memory: number;
  memory_limit: number;
  memory_percent: number;
  pids: number | null;
}

/** Whether a sandbox's container runs (its figures change). */
export function isRunning(state: string): boolean {
  return state === 'ready' || state === 'starting';
}

/** The last figures by sandbox name; `changed` fires after each read. */
export class UsageModel {
  /**
   * @param sandboxes - the panel's model (reads stop while no sandbox runs)
   * @param visible - whether the panel is on screen now
   */
  constructor(
    readonly sandboxes: SandboxModel,
    visible: () => boolean
  ) {
    this._poll = new Poll({
      factory: () => this._read(),
      frequency: { interval: USAGE_POLL_SECONDS * 1000, backoff: true, max: 60000 },
      name: 'jupyter-sandbox:usage',
      standby: () => document.visibilityState === 'hidden' || !visible() || !this._anyRunning()
    });
  }

  /** Fires after each read. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The figures of a sandbox, if it ran at the last read. */
  get(name: string): IUsage | undefined {
    return this._usage.get(name);
  }

  /** Read now (when the panel is shown), then on the usual schedule. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  private _anyRunning(): boolean {
    return this.sandboxes.sandboxes.some(s => isRunning(s.state));
  }

  private async _read(): Promise<void> {
    const list = await requestAPI<IUsage[]>('stats');
    this._usage = new Map(list.map(u => [u.name, u]));
    this._changed.emit();
  }

  private _poll: Poll;
  private _usage = new Map<string, IUsage>();
  private _changed = new Signal<this, void>(this);
}

/** Bytes in binary units: `312 MiB`, `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** "CPU 12% (limit 1 CPU) · memory 213 MiB / 1 GiB (21%)": the card's usage line (CPU in percent of one CPU). */
export function usageText(usage: IUsage): string {
  const percent = usage.cpu_percent.toFixed(usage.cpu_percent < 10 ? 1 : 0);
  const cpu = `CPU ${percent}%${usage.cpu_limit ? ` (limit ${usage.cpu_limit} CPU)` : ''}`;
  const memory = `memory ${formatBytes(usage.memory)} / ${formatBytes(usage.memory_limit)} (${Math.round(usage.memory_percent)}%)`;
  return `${cpu} · ${memory}`;
}
