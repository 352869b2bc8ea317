/**
 * The panel's model: every sandbox with its live phases, kept current by the
 * server's events websocket (polling the list only while the socket is down).
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { EventsMessage, IEngineState, IProgressEvent, ISandboxInfo, eventsSocketUrl, requestAPI } from './api';

/** Seconds between list requests while the websocket is down. */
const FALLBACK_POLL_SECONDS = 5;
/** Longest wait before reconnecting the websocket. */
const MAX_RECONNECT_MS = 10000;

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
  constructor() {
    this._poll = new Poll({
      auto: false,
      factory: () => this.refresh(),
      frequency: { interval: FALLBACK_POLL_SECONDS * 1000, backoff: true, max: 60000 },
      name: 'jupyter-sandbox:fallback',
      standby: 'when-hidden'
    });
    this._connect();
  }

  /** Fires whenever a sandbox, a phase or the connection changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Every sandbox, oldest first (warm-pool members left out). */
  get sandboxes(): ISandboxInfo[] {
    return [...this._sandboxes.values()].filter(s => !s.pool).sort((a, b) => (a.created ?? 0) - (b.created ?? 0));
  }

  /** A sandbox by name. */
  get(name: string): ISandboxInfo | undefined {
    return this._sandboxes.get(name);
  }

  /** Whether live events arrive (false: the panel polls). */
  get live(): boolean {
    return this._socket?.readyState === WebSocket.OPEN;
  }

  /** The Docker engine's state as the server last reported it. */
  get engine(): IEngineState {
    return this._engine;
  }

  /** The last connection problem, if any. */
  get problem(): string {
    return this._problem;
  }

  /** Re-read the list from the server (keeping the phases already seen). */
  async refresh(): Promise<void> {
    try {
      const list = await requestAPI<ISandboxInfo[]>('sandboxes');
      const fresh = new Map<string, ISandboxInfo>();
      for (const info of list) {
        fresh.set(info.name, info);
      }
      for (const [name, old] of this._sandboxes) {
        if (!fresh.has(name) && (old.state === 'failed' || old.state === 'gone')) {
          fresh.set(name, old); // keep failures on screen until dismissed
        }
      }
      this._sandboxes = fresh;
      this._problem = '';
    } catch (error) {
      this._problem = `Cannot list sandboxes: ${(error as Error).message}`;
    }
    this._changed.emit();
  }

  /** Drop a failed or gone sandbox from the view. */
  dismiss(name: string): void {
    if (this._sandboxes.delete(name)) {
      this._changed.emit();
    }
  }

  /** Note a create the server accepted, so it shows before its first event. */
  expect(info: Partial<ISandboxInfo> & { name: string }): void {
    if (!this._sandboxes.has(info.name)) {
      this._sandboxes.set(info.name, { ...emptyInfo(info.name), ...info });
      this._changed.emit();
    }
  }

  /** Close the websocket and stop polling. */
  dispose(): void {
    this._disposed = true;
    this._poll.dispose();
    this._socket?.close();
    Signal.clearData(this);
  }

  private _connect(): void {
    if (this._disposed) {
      return;
    }
    const socket = new WebSocket(eventsSocketUrl());
    this._socket = socket;
    socket.onopen = () => {
      this._reconnectMs = 500;
      this._problem = '';
      void this._poll.stop();
    };
    socket.onmessage = message => {
      this._apply(JSON.parse(message.data) as EventsMessage);
      this._changed.emit();
    };
    socket.onclose = () => {
      if (this._disposed) {
        return;
      }
      this._problem = 'Live updates interrupted; reconnecting (the list is polled meanwhile).';
      void this._poll.start();
      this._changed.emit();
      setTimeout(() => this._connect(), this._reconnectMs);
      this._reconnectMs = Math.min(this._reconnectMs * 2, MAX_RECONNECT_MS);
    };
  }

  private _apply(message: EventsMessage): void {
    switch (message.type) {
      case 'snapshot': {
        const fresh = new Map<string, ISandboxInfo>();
        for (const info of message.sandboxes) {
          fresh.set(info.name, info);
        }
        for (const [name, old] of this._sandboxes) {
          if (!fresh.has(name) && (old.state === 'failed' || old.state === 'gone')) {
            fresh.set(name, old);
          }
        }
        this._sandboxes = fresh;
        this._engine = message.engine;
        break;
      }
      case 'event': {
        const event = message.event;
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
        const info = message.sandbox;
        const current = this._sandboxes.get(info.name);
        if (info.state === 'gone' && !current) {
          break; // nothing on screen to mark gone (dismissed, or never seen)
        }
        let phases = current?.phases ?? [];
        for (const event of info.phases ?? []) {
          phases = addPhase(phases, event);
        }
        this._sandboxes.set(info.name, { ...info, phases });
        break;
      }
      case 'engine':
        this._engine = message.engine;
        break;
      case 'notice':
        this._notices.set(message.notice.sandbox, message.notice.message);
        break;
    }
  }

  /** The last thing the server did to a sandbox on its own (resumed it for a use, paused it when idle...). */
  notice(name: string): string | undefined {
    return this._notices.get(name);
  }

  private _notices = new Map<string, string>();

  private _sandboxes = new Map<string, ISandboxInfo>();
  private _changed = new Signal<this, void>(this);
  private _engine: IEngineState = { connected: true, message: '' };
  private _problem = '';
  private _socket: WebSocket | null = null;
  private _reconnectMs = 500;
  private _disposed = false;
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
