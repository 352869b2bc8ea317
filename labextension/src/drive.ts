/**
 * The sandboxes' files as one Lab drive, `Sandboxes`: its top level lists the
 * running and paused sandboxes as folders, and `Sandboxes:<name>/<path>` is
 * `/<path>` inside sandbox `<name>`.  One drive (not one per sandbox) because
 * Lab's contents manager can add drives but never remove them, while sandboxes
 * come and go; a single file browser then reaches every sandbox.
 *
 * Every call goes to the server extension's `sandboxes/<name>/files/<path>`
 * routes, which read and write inside the sandbox through the core's
 * `sb.files` (a path that is a symbolic link is never read or written through).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { ISandboxInfo, NAMESPACE, SandboxAPIError, requestAPI } from './api';

/** The drive's name: Lab paths in it read `Sandboxes:<sandbox>/<path inside>`. */
export const DRIVE_NAME = 'Sandboxes';

/** The states whose files can be reached (a paused sandbox resumes on first use). */
const BROWSABLE = new Set(['ready', 'paused']);

/** A contents model as the server answers it: the sandbox's absolute `path`, plus `kind` (`link`...). */
interface IServerModel extends Omit<Contents.IModel, 'content'> {
  kind: 'file' | 'directory' | 'link' | 'other';
  content: IServerModel[] | string | null;
}

/** An error Lab's file browser understands: its text with the server's fix, and the HTTP status on `response`. */
class DriveError extends Error {
  constructor(
    message: string,
    readonly response: { status: number }
  ) {
    super(message);
  }
}

/** Lab's `name/rest/of/path` as the sandbox's name and its absolute path inside (`/` for the name alone). */
export function splitPath(localPath: string): { name: string; inner: string } {
  const parts = localPath.split('/').filter(part => part.length > 0);
  return { name: parts[0] ?? '', inner: '/' + parts.slice(1).join('/') };
}

/** The drive-local path of a sandbox path. */
function localOf(name: string, inner: string): string {
  return inner === '/' ? name : `${name}${inner}`;
}

/** `sandboxes/<name>/<route>/<encoded path parts>`, relative to the API namespace. */
function route(name: string, which: 'files' | 'download', inner: string): string {
  const parts = inner.split('/').filter(part => part.length > 0);
  return ['sandboxes', name, which, ...parts].map(encodeURIComponent).join('/');
}

/** A server model with drive-local paths (and its listing's). */
function toLab(name: string, model: IServerModel): Contents.IModel {
  const content = Array.isArray(model.content) ? model.content.map(item => toLab(name, item)) : model.content;
  const own = model.path === '/' ? name : model.name;
  return { ...model, name: own, path: localOf(name, model.path), content } as Contents.IModel;
}

/** The top level's folder for one sandbox. */
function sandboxFolder(info: ISandboxInfo): Contents.IModel {
  const time = new Date((info.created ?? 0) * 1000).toISOString();
  return {
    name: info.name,
    path: info.name,
    type: 'directory',
    writable: false,
    created: time,
    last_modified: time,
    mimetype: '',
    content: null,
    format: null
  };
}

/** The files of every sandbox, as a `Contents.IDrive`. */
export class SandboxDrive implements Contents.IDrive {
  readonly name = DRIVE_NAME;
  readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings();
  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
  private _isDisposed = false;

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    this._isDisposed = true;
    Signal.clearData(this);
  }

  /** Call a files route, turning its JSON error into a `DriveError` with the fix. */
  private async _call<T>(endPoint: string, init: RequestInit = {}): Promise<T> {
    try {
      return await requestAPI<T>(endPoint, init);
    } catch (error) {
      if (error instanceof SandboxAPIError) {
        throw new DriveError(error.fullMessage, { status: error.status });
      }
      throw error;
    }
  }

  /** A sandbox's path inside, or an error for the top level where only sandboxes live. */
  private _inside(localPath: string, what: string): { name: string; inner: string } {
    const where = splitPath(localPath);
    if (!where.name) {
      throw new DriveError(`Cannot ${what} here: the top level lists the sandboxes. Open one first.`, { status: 400 });
    }
    return where;
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const { name, inner } = splitPath(localPath);
    if (!name) {
      const sandboxes = await this._call<ISandboxInfo[]>('sandboxes');
      const content = sandboxes.filter(info => BROWSABLE.has(info.state)).map(sandboxFolder);
      return { ...sandboxFolder({ name: '', created: null } as ISandboxInfo), path: '', content, format: 'json' };
    }
    const notebook = options?.type === 'notebook';
    const query = new URLSearchParams({ content: options?.content === false ? '0' : '1' });
    const format = notebook ? 'text' : options?.format;
    if (format === 'text' || format === 'base64') {
      query.set('format', format);
    }
    const model = toLab(name, await this._call<IServerModel>(`${route(name, 'files', inner)}?${query}`));
    if (notebook && typeof model.content === 'string') {
      return { ...model, type: 'notebook', format: 'json', content: JSON.parse(model.content) };
    }
    return model;
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    const { name, inner } = this._inside(localPath, 'download');
    return URLExt.join(this.serverSettings.baseUrl, NAMESPACE, route(name, 'download', inner));
  }

  async newUntitled(options: Contents.ICreateOptions = {}): Promise<Contents.IModel> {
    const { name, inner } = this._inside(options.path ?? '', 'create files');
    const body = { type: options.type === 'directory' ? 'directory' : 'file', ext: options.ext };
    const model = toLab(
      name,
      await this._call<IServerModel>(route(name, 'files', inner), { method: 'POST', body: JSON.stringify(body) })
    );
    this._fileChanged.emit({ type: 'new', oldValue: null, newValue: model });
    return model;
  }

  async delete(localPath: string): Promise<void> {
    const { name, inner } = this._inside(localPath, 'delete');
    if (inner === '/') {
      throw new DriveError('A sandbox is removed with “terminate” in the Sandboxes panel, not from its files.', {
        status: 400
      });
    }
    await this._call<void>(route(name, 'files', inner), { method: 'DELETE' });
    this._fileChanged.emit({ type: 'delete', oldValue: { path: localPath }, newValue: null });
  }

  async rename(oldLocalPath: string, newLocalPath: string): Promise<Contents.IModel> {
    const from = this._inside(oldLocalPath, 'rename');
    const to = splitPath(newLocalPath);
    if (to.name !== from.name) {
      throw new DriveError('Files move only within one sandbox.', { status: 400 });
    }
    const body = JSON.stringify({ path: to.inner });
    const model = toLab(
      from.name,
      await this._call<IServerModel>(route(from.name, 'files', from.inner), { method: 'PATCH', body })
    );
    this._fileChanged.emit({ type: 'rename', oldValue: { path: oldLocalPath }, newValue: model });
    return model;
  }

  async save(localPath: string, options: Partial<Contents.IModel> = {}): Promise<Contents.IModel> {
    const { name, inner } = this._inside(localPath, 'save files');
    const body = { type: options.type, format: options.format, content: options.content, chunk: options.chunk };
    const model = toLab(
      name,
      await this._call<IServerModel>(route(name, 'files', inner), { method: 'PUT', body: JSON.stringify(body) })
    );
    if (!options.chunk || options.chunk === -1) {
      this._fileChanged.emit({ type: 'save', oldValue: null, newValue: model });
    }
    return model;
  }

  async copy(localPath: string, toLocalDir: string): Promise<Contents.IModel> {
    throw new DriveError('Copying is not available in sandbox files: download the file and upload it again.', {
      status: 400
    });
  }

  /** Sandbox files keep no checkpoints; the 403 tells Lab's document context so (it then saves without one). */
  async createCheckpoint(localPath: string): Promise<Contents.ICheckpointModel> {
    throw new DriveError('Sandbox files keep no checkpoints.', { status: 403 });
  }

  async listCheckpoints(localPath: string): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  async restoreCheckpoint(localPath: string, checkpointID: string): Promise<void> {
    throw new DriveError('Sandbox files keep no checkpoints.', { status: 403 });
  }

  async deleteCheckpoint(localPath: string, checkpointID: string): Promise<void> {
    return;
  }
}
