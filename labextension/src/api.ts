/**
 * Talking to the jupyter-sandbox server extension: one `requestAPI<T>()`
 * helper for the REST endpoints under `/sandbox/api/`, the types it returns,
 * and the URL of the events websocket.
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

/** The engine connection as the server's watcher sees it. */
export interface IEngineState {
  connected: boolean;
  message: string;
}

/** What the events websocket sends. */
export type EventsMessage =
  | { type: 'snapshot'; sandboxes: ISandboxInfo[]; engine: IEngineState }
  | { type: 'event'; event: IProgressEvent }
  | { type: 'sandbox'; sandbox: ISandboxInfo }
  | { type: 'engine'; engine: IEngineState }
  | { type: 'notice'; notice: { sandbox: string; action: string; message: string; time: number } };

/**
 * An error answered by the server extension, with the fields of the core's
 * `SandboxError.to_dict()` (and `field` for a bad request field).
 */
export class SandboxAPIError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly fix?: string,
    readonly field?: string
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
    throw new SandboxAPIError(message, response.status, data?.fix, data?.field);
  }
  return data as T;
}

/** The events websocket's URL (with the token when the page needs one). */
export function eventsSocketUrl(): string {
  const settings = ServerConnection.makeSettings();
  let url = URLExt.join(settings.wsUrl, NAMESPACE, 'events');
  if (settings.appendToken && settings.token) {
    url += `?token=${encodeURIComponent(settings.token)}`;
  }
  return url;
}
