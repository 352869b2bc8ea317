/**
 * The panel's model: every sandbox with its live phases.  It reads the state
 * from `GET /sandbox/api/watch`, then applies the server's emissions from
 * jupyter-server's event bus (Lab's event manager, filtered by our schema id),
 * reading the state again when their numbering skips or the server restarted.
 * The list is polled only while the bus is silent past its heartbeats.
 */
import { Event } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  IEngineState,
  IPhaseCatalog,
  IProgressEvent,
  ISandboxEmission,
  ISandboxInfo,
  IWatchState,
  SCHEMA_ID,
  requestAPI
} from './api';

/** Seconds between list requests while the event bus is silent. */
const FALLBACK_POLL_SECONDS = 5;
/** Missed heartbeats after which the bus counts as interrupted. */
const MISSED_HEARTBEATS = 3;
/** Seconds a removed sandbox stays in the "Recently removed" group (setting `removedKeepMinutes`). */
export const REMOVED_KEEP_SECONDS = 300;

/** Merge a phase event into a sandbox's phase list (one entry per phase/state/uptime). */
function addPhase(phases: IProgressEvent[], event: IProgressEvent): IProgressEvent[] {
  const seen = phases.some(
    p =>
      p.phase === event.phase &&
      p.state === event.state &&
      (p.uptime === null || event.uptime === null || Math.abs(p.uptime - event.uptime) < 0.01)
  );
  return seen ? phases : [...phases, event];
}

/** Sandboxes by name, updated from the server; `changed` fires after each update. */
export class SandboxModel {
  /**
   * @param events - Lab's event manager (`app.serviceManager.events`)
   */
  constructor(readonly events: Event.IManager) {
    this._poll = new Poll({
      auto: false,
      factory: () => this.refresh(),
      frequency: { interval: FALLBACK_POLL_SECONDS * 1000, backoff: true, max: 60000 },
      name: 'jupyter-sandbox:fallback',
      standby: 'when-hidden'
    });
    events.stream.connect(this._onEmission, this);
    this._watchdog = setInterval(() => {
      this._checkSilence();
      this._pruneRemoved();
    }, 1000);
  }

  /** Fires whenever a sandbox, a phase or the connection changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Every sandbox, oldest first (warm-pool members left out). */
  get sandboxes(): ISandboxInfo[] {
    return [...this._sandboxes.values()].filter(s => !s.pool).sort((a, b) => (a.created ?? 0) - (b.created ?? 0));
  }

  /** When a sandbox shown as removed (`gone`) was seen go (ms), for the "Recently removed" group. */
  removedAt(name: string): number | undefined {
    return this._removedAt.get(name);
  }

  /** Forget every removed sandbox (the group's "Clear"). */
  clearRemoved(): void {
    let changed = false;
    for (const [name, info] of this._sandboxes) {
      if (info.state === 'gone') {
        this._sandboxes.delete(name);
        changed = true;
      }
    }
    this._removedAt.clear();
    if (changed) {
      this._changed.emit();
    }
  }

  /** Seconds a removed sandbox stays in the "Recently removed" group before it goes by itself. */
  removedKeepSeconds = REMOVED_KEEP_SECONDS;

  /** Whether this page created it (the panel highlights it while it starts). */
  isFresh(name: string): boolean {
    return this._fresh.has(name);
  }

  /** A sandbox by name. */
  get(name: string): ISandboxInfo | undefined {
    return this._sandboxes.get(name);
  }

  /** Whether live events arrive (false: the panel polls). */
  get live(): boolean {
    return this._live;
  }

  /** The server's startup phases and their titles (null until read). */
  get phases(): IPhaseCatalog | null {
    return this._catalog;
  }

  /** The Docker engine's state as the server last reported it. */
  get engine(): IEngineState {
    return this._engine;
  }

  /** The last connection problem, if any. */
  get problem(): string {
    return this._problem;
  }

  /**
   * Read the state from the server (keeping the phases already seen, and
   * failures until dismissed); emissions arriving meanwhile are applied after it.
   */
  refresh(): Promise<void> {
    if (!this._refreshing) {
      this._buffer = [];
      this._refreshing = this._read().finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  /** Drop a failed or gone sandbox from the view. */
  dismiss(name: string): void {
    this._removedAt.delete(name);
    if (this._sandboxes.delete(name)) {
      this._changed.emit();
    }
  }

  /** Note a create the server accepted, so it shows before its first event. */
  expect(info: Partial<ISandboxInfo> & { name: string }): void {
    this._fresh.add(info.name);
    if (!this._sandboxes.has(info.name)) {
      this._sandboxes.set(info.name, { ...emptyInfo(info.name), ...info });
      this._changed.emit();
    }
  }

  /** Stop listening and polling. */
  dispose(): void {
    this.events.stream.disconnect(this._onEmission, this);
    clearInterval(this._watchdog);
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async _read(): Promise<void> {
    try {
      if (!this._catalog) {
        this._catalog = await requestAPI<IPhaseCatalog>('phases');
      }
      const state = await requestAPI<IWatchState>('watch');
      const fresh = new Map<string, ISandboxInfo>();
      for (const info of state.sandboxes) {
        const old = this._sandboxes.get(info.name);
        let phases = old?.phases ?? [];
        for (const event of info.phases ?? []) {
          phases = addPhase(phases, event);
        }
        fresh.set(info.name, { ...info, phases });
      }
      for (const [name, old] of this._sandboxes) {
        if (fresh.has(name)) {
          continue;
        }
        if (old.state === 'failed' || old.state === 'gone') {
          fresh.set(name, old); // keep failures on screen until dismissed, removed ones in their group
        } else if (old.container_id) {
          fresh.set(name, { ...old, state: 'gone', reason: 'removed' }); // went while the bus was silent
        }
      }
      this._noteRemovals(fresh);
      this._sandboxes = fresh;
      this._engine = state.engine;
      this._stream = state.stream;
      this._seq = state.seq;
      this._heartbeat = state.heartbeat;
      this._problem = this._live ? '' : this._problem;
      if (!this._heard) {
        this._heard = Date.now(); // count the bus's silence from here
      }
    } catch (error) {
      this._problem = `Cannot list sandboxes: ${(error as Error).message}`;
      this._buffer = []; // no state to apply them to; the next emission's gap reads it again
    }
    const buffered = this._buffer ?? [];
    this._buffer = null;
    for (const emission of buffered) {
      this._take(emission);
    }
    this._changed.emit();
  }

  private _onEmission(sender: Event.IManager, emission: Event.Emission): void {
    if (emission.schema_id !== SCHEMA_ID) {
      return;
    }
    this._heard = Date.now();
    if (!this._live) {
      this._live = true;
      this._problem = '';
      void this._poll.stop();
    }
    this._take(emission as unknown as ISandboxEmission);
    this._changed.emit();
  }

  /** Apply an emission in order; one out of sequence means some were missed: read the state again. */
  private _take(emission: ISandboxEmission): void {
    if (this._buffer) {
      this._buffer.push(emission); // a state read is under way: after it
      return;
    }
    if (emission.stream !== this._stream || emission.seq > this._seq + 1) {
      if (this._stream && emission.stream !== this._stream) {
        this._catalog = null; // a restarted server may be another version
      }
      void this.refresh(); // starts buffering: this emission is taken after the state
      this._take(emission);
      return;
    }
    if (emission.seq <= this._seq) {
      return; // already in the state read
    }
    this._seq = emission.seq;
    this._apply(emission);
  }

  /** No emission for several heartbeats: the bus is interrupted (Lab reconnects it); poll meanwhile. */
  private _checkSilence(): void {
    if (!this._live || !this._heartbeat || !this._heard) {
      return;
    }
    if (Date.now() - this._heard > MISSED_HEARTBEATS * this._heartbeat * 1000) {
      this._live = false;
      this._problem = 'Live updates interrupted; reconnecting (the list is polled meanwhile).';
      void this._poll.start();
      this._changed.emit();
    }
  }

  private _apply(message: ISandboxEmission): void {
    switch (message.kind) {
      case 'event': {
        const event = message.event!;
        if (event.phase === 'removed' && !this._sandboxes.has(event.sandbox)) {
          break; // terminated from here and dismissed already
        }
        const current = this._sandboxes.get(event.sandbox) ?? emptyInfo(event.sandbox);
        this._sandboxes.set(event.sandbox, {
          ...current,
          phases: addPhase(current.phases, event)
        });
        break;
      }
      case 'sandbox': {
        const info = message.sandbox!;
        const current = this._sandboxes.get(info.name);
        if (info.state === 'gone' && !current) {
          break; // nothing on screen to mark gone (dismissed, or never seen)
        }
        let phases = current?.phases ?? [];
        for (const event of info.phases ?? []) {
          phases = addPhase(phases, event);
        }
        this._sandboxes.set(info.name, { ...info, phases });
        this._noteRemovals(this._sandboxes);
        break;
      }
      case 'engine':
        this._engine = message.engine!;
        break;
      case 'notice':
        this._notices.set(message.notice!.sandbox, message.notice!.message);
        break;
      case 'heartbeat':
        this._heartbeat = message.heartbeat ?? this._heartbeat;
        break;
    }
  }

  /** The last thing the server did to a sandbox on its own (resumed it for a use, paused it when idle...). */
  notice(name: string): string | undefined {
    return this._notices.get(name);
  }

  /** Note when each sandbox turned `gone` (and forget the time of one that came back). */
  private _noteRemovals(sandboxes: Map<string, ISandboxInfo>): void {
    for (const [name, info] of sandboxes) {
      if (info.state === 'gone') {
        if (!this._removedAt.has(name)) {
          this._removedAt.set(name, Date.now());
        }
      } else {
        this._removedAt.delete(name);
      }
    }
  }

  /** Drop removed sandboxes older than {@link removedKeepSeconds}. */
  private _pruneRemoved(): void {
    const oldest = Date.now() - this.removedKeepSeconds * 1000;
    let changed = false;
    for (const [name, at] of this._removedAt) {
      if (at < oldest) {
        this._removedAt.delete(name);
        changed = this._sandboxes.delete(name) || changed;
      }
    }
    if (changed) {
      this._changed.emit();
    }
  }

  private _notices = new Map<string, string>();
  private _removedAt = new Map<string, number>();
  private _fresh = new Set<string>();

  private _sandboxes = new Map<string, ISandboxInfo>();
  private _changed = new Signal<this, void>(this);
  private _engine: IEngineState = { connected: true, message: '' };
  private _problem = '';
  private _catalog: IPhaseCatalog | null = null;
  /** The server's stream and the number of the last emission applied. */
  private _stream = '';
  private _seq = 0;
  /** Emissions that arrived while a state read was under way (null: none under way). */
  private _buffer: ISandboxEmission[] | null = null;
  private _refreshing: Promise<void> | null = null;
  private _heartbeat = 0;
  /** When an emission last arrived (ms), 0 before the first state read. */
  private _heard = 0;
  private _live = true;
  private _watchdog: ReturnType<typeof setInterval>;
  private _poll: Poll;
}

/** A placeholder for a sandbox known only by name so far. */
function emptyInfo(name: string): ISandboxInfo {
  return {
    name,
    state: 'starting',
    reason: 'starting',
    container_id: '',
    image: '',
    docker: false,
    cpu: null,
    memory: null,
    disk: null,
    network: 'sandbox',
    owner: '',
    pool: false,
    created: Date.now() / 1000,
    started_at: null,
    runtime: '',
    phases: [],
    uptime: null
  };
}
