/**
 * Talking to the jupyter-sandbox server extension: one `requestAPI<T>()`
 * helper for the REST endpoints under `/sandbox/api/`, the types it returns,
 * and the shape of its emissions on jupyter-server's event bus.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Where every route of the server extension lives, relative to the base URL. */
export const NAMESPACE = 'sandbox/api';

/** A sandbox state, as the core derives it. */
export type SandboxState = 'starting' | 'ready' | 'failed' | 'stopped' | 'gone' | 'paused';

/** One startup phase report (`ProgressEvent.to_dict()` on the server). */
export interface IProgressEvent {
  sandbox: string;
  phase: string;
  state: 'started' | 'done' | 'failed';
  elapsed: number;
  message: string;
  detail: string;
  time: number;
  uptime: number | null;
  label: string;
}

/** One sandbox (`SandboxInfo.to_dict()` on the server). */
export interface ISandboxInfo {
  name: string;
  state: SandboxState;
  reason: string;
  container_id: string;
  image: string;
  docker: boolean;
  cpu: number | null;
  memory: string | null;
  pids?: number | null;
  /** The Docker disk store's size, e.g. `2Gi` (null without Docker). */
  disk: string | null;
  network: string;
  egress?: string | string[];
  address?: string;
  owner: string;
  /** The creator's process id; for owner `kernel`, its kernel id and the notebook whose session runs it. */
  owner_pid?: number | null;
  kernel?: string;
  used_by?: string | null;
  pool: boolean;
  created: number | null;
  started_at: number | null;
  runtime: string;
  phases: IProgressEvent[];
  uptime: number | null;
  /** Time to live in seconds, and when it runs out (Unix time); null without one. */
  ttl?: number | null;
  expires?: number | null;
  /** Seconds without use before it is paused, and its last use seen (Unix time). */
  idle_timeout?: number | null;
  last_activity?: number | null;
  /** The id of the Jupyter server it belongs to (empty: the user's own, made outside any server). */
  server?: string;
  /** How long its create took, as its creator measured it: the "ready in" figure of every face. */
  ready_seconds?: number | null;
}

/** The body of a create request; left-out fields take the server's defaults. */
export interface ICreateRequest {
  name?: string;
  image?: string;
  docker?: boolean;
  cpu?: string;
  memory?: string;
  pids?: string;
  /** The Docker disk store's size, e.g. `2Gi`. */
  disk?: string;
  network?: string;
  egress?: string;
  /** Seconds, or text such as `30m`, `2h`, `1d`. */
  ttl?: string;
  idle_timeout?: string;
}

/** One inner container, as `docker ps --format '{{json .}}'` prints it. */
export interface IInnerContainer {
  ID: string;
  Image: string;
  Command: string;
  Status: string;
  Names: string;
  [key: string]: string;
}

/** A TCP port listening inside a sandbox (`GET sandboxes/<name>/ports`). */
export interface IListeningPort {
  port: number;
  addresses: string[];
  /** Whether it can be reached from outside the sandbox (not bound to loopback only). */
  reachable: boolean;
  /** Its URL through the Jupyter server: `<base_url>sandbox/proxy/<name>/<port>/`. */
  url: string;
}

/** The URL of a sandbox port through the Jupyter server's proxy. */
export function proxyUrl(name: string, port: number): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, 'sandbox/proxy', encodeURIComponent(name), String(port), '/');
}

/** A dockerd log line expected under gVisor (the core's `daemonlog.HARMLESS`): text it contains, and why. */
export interface IHarmlessNote {
  match: string;
  why: string;
}

/** One line of a streamed answer (`application/x-ndjson`): output, the log's notes, or the end. */
export interface IStreamLine {
  stream?: 'stdout' | 'stderr';
  text?: string;
  notes?: IHarmlessNote[];
  exit_code?: number | null;
  error?: string;
  message?: string;
}

/**
 * Read a streamed endpoint (NDJSON) line by line until it ends or `signal` aborts it.
 *
 * @param endPoint - path below `/sandbox/api/`, with its query
 * @param onLine - called with each decoded line
 * @param signal - aborting it leaves the stream (the server then stops its follower)
 * @throws SandboxAPIError when the server refuses the request
 */
export async function streamAPI(
  endPoint: string,
  onLine: (line: IStreamLine) => void,
  signal: AbortSignal
): Promise<void> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, NAMESPACE, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, { signal }, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  if (!response.ok || !response.body) {
    let data: any = undefined;
    try {
      data = await response.json();
    } catch {
      // not JSON: the status says it
    }
    const message = (data && data.message) || `${response.status} ${response.statusText}`;
    throw new SandboxAPIError(message, response.status, data?.fix, data?.field, data?.error);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      break;
    }
    const lines = (pending + decoder.decode(value, { stream: true })).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim()) {
        onLine(JSON.parse(line) as IStreamLine);
      }
    }
  }
}

/** The engine connection as the server's watcher sees it. */
export interface IEngineState {
  connected: boolean;
  message: string;
}

/** The `$id` of the server's sandbox events on the event bus (`event_schemas/sandbox/v1.yaml`). */
export const SCHEMA_ID = 'https://events.jupyter.org/jupyter_sandbox/sandbox/v1';

/**
 * One emission of our schema on `/api/events/subscribe`: numbered `seq` 1, 2,
 * 3... within the server's `stream`, with the payload under the `kind`'s name.
 */
export interface ISandboxEmission {
  schema_id: string;
  stream: string;
  seq: number;
  kind: 'event' | 'sandbox' | 'engine' | 'notice' | 'heartbeat';
  event?: IProgressEvent;
  sandbox?: ISandboxInfo;
  engine?: IEngineState;
  notice?: { sandbox: string; action: string; message: string; time: number };
  /** Seconds between heartbeats (kind `heartbeat`). */
  heartbeat?: number;
}

/** `GET watch`: the state the emissions apply to, as of emission `seq` of `stream`. */
export interface IWatchState {
  stream: string;
  seq: number;
  /** Seconds between heartbeats (0: the server sends none). */
  heartbeat: number;
  sandboxes: ISandboxInfo[];
  engine: IEngineState;
}

/** `GET phases`: the startup phases in order and their titles (the core's `events.phase_catalog()`). */
export interface IPhaseCatalog {
  docker: string[];
  plain: string[];
  fork: string[];
  labels: { [phase: string]: string };
  /** Phases named `image_prefix + IMAGE` load a preloaded image, just before `ready`. */
  image_prefix: string;
  image_label: string;
}

/**
 * An error answered by the server extension, with the fields of the core's
 * `SandboxError.to_dict()` (and `field` for a bad request field).
 */
export class SandboxAPIError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly fix?: string,
    readonly field?: string,
    /** The core's error code (`bad_spec`, `exists`, `not_found`...). */
    readonly code?: string
  ) {
    super(message);
  }

  /** The message with its fix, as the CLI prints it. */
  get fullMessage(): string {
    return this.fix ? `${this.message}\nHow to fix: ${this.fix}` : this.message;
  }
}

/**
 * Call a REST endpoint of the server extension.
 *
 * @param endPoint - path below `/sandbox/api/`, e.g. `sandboxes/demo`
 * @param init - fetch options (method, body)
 * @returns the decoded JSON body (undefined for an empty one)
 * @throws SandboxAPIError with the server's message, or a network error
 */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, NAMESPACE, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = undefined;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const message = (data && data.message) || `${response.status} ${response.statusText}`;
    throw new SandboxAPIError(message, response.status, data?.fix, data?.field, data?.error);
  }
  return data as T;
}
