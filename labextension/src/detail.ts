/**
 * The panel's live detail views, each following its sandbox until its tab is closed:
 * a streamed log (the dockerd log, with the lines expected under gVisor dimmed and
 * explained, or an inner container's `docker logs`), and the inner containers,
 * re-read every couple of seconds while visible, each with Logs, Stop and Remove.
 * Both say plainly when their sandbox is gone.
 */
import { Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IHarmlessNote, IInnerContainer, IStreamLine, SandboxAPIError, requestAPI, streamAPI } from './api';

/** Seconds between two readings of the inner containers while their view is visible. */
const CONTAINERS_INTERVAL_SECONDS = 2;
/** Seconds before following the dockerd log again after its stream ended with the sandbox still there. */
const RECONNECT_SECONDS = 2;
/** Lines a log view keeps (older ones are dropped as new ones arrive). */
const MAX_LINES = 5000;

/** What a view says once its sandbox is gone. */
export function goneText(name: string): string {
  return `Sandbox “${name}” is gone (terminated or removed): nothing more will come.`;
}

/** Whether an error means the sandbox no longer exists. */
function isGone(error: unknown): boolean {
  return error instanceof SandboxAPIError && error.status === 404 && error.code === 'not_found';
}

/** The error text to show: the server's message and its fix. */
function describe(error: unknown): string {
  return error instanceof SandboxAPIError ? error.fullMessage : String(error);
}

/** Whether the sandbox still exists (a failed check counts as existing: the next try tells). */
async function sandboxExists(name: string): Promise<boolean> {
  try {
    const info = await requestAPI<{ state: string }>(`sandboxes/${encodeURIComponent(name)}`);
    return info.state !== 'gone';
  } catch (error) {
    return !isGone(error);
  }
}

/** Where a log view reads from, and what its end means. */
export interface ILogSource {
  /** The sandbox it belongs to. */
  sandbox: string;
  /** The streamed endpoint below `/sandbox/api/` (with `follow=true`). */
  endPoint: string;
  /** Follow again when the stream ends while the sandbox still exists (the dockerd log). */
  reconnect: boolean;
  /** What the status line says when the stream ended and the sandbox still exists. */
  endedText: string;
}

/** A followed log: lines appended as they arrive; expected dockerd lines dimmed, with why on hover. */
export class LogView extends Widget {
  constructor(
    readonly source: ILogSource,
    className: string
  ) {
    super();
    this.addClass('jp-SandboxTextView');
    this.addClass('jp-SandboxLiveView');
    this.addClass(className);
    this._status = document.createElement('div');
    this._status.className = 'jp-SandboxLiveView-status';
    this._pre = document.createElement('pre');
    this.node.append(this._status, this._pre);
  }

  /** Start following (called once the view is in the main area). */
  start(): void {
    void this._follow();
  }

  dispose(): void {
    this._controller?.abort(); // closing the tab leaves the stream: the server stops its follower
    this._closed = true;
    super.dispose();
  }

  private async _follow(): Promise<void> {
    while (!this._closed) {
      this._controller = new AbortController();
      this._setStatus('following', 'Following: new lines appear as they are written.');
      this._pre.textContent = '';
      this._partial = null;
      let ended = '';
      try {
        await streamAPI(this.source.endPoint, line => this._take(line), this._controller.signal);
      } catch (error) {
        if (this._closed) {
          return;
        }
        ended = describe(error);
        if (isGone(error)) {
          this._setStatus('gone', goneText(this.source.sandbox));
          return;
        }
      }
      if (this._closed) {
        return;
      }
      if (!(await sandboxExists(this.source.sandbox))) {
        this._setStatus('gone', goneText(this.source.sandbox));
        return;
      }
      if (!this.source.reconnect) {
        this._setStatus('ended', ended || this.source.endedText);
        return;
      }
      this._setStatus('ended', `${ended || this.source.endedText} Following again…`);
      await new Promise(resolve => setTimeout(resolve, RECONNECT_SECONDS * 1000));
    }
  }

  private _take(line: IStreamLine): void {
    if (line.notes) {
      this._notes = line.notes;
    } else if (line.text !== undefined) {
      this._append(line.text);
    } else if (line.message) {
      this._setStatus('ended', line.message);
    }
  }

  /** Append text, line by line; an unfinished last line is shown and completed by the next chunk. */
  private _append(text: string): void {
    const atEnd = this.node.scrollTop + this.node.clientHeight >= this.node.scrollHeight - 4;
    let rest = text;
    if (this._partial) {
      rest = (this._partial.dataset.text ?? '') + text;
      this._partial.remove();
      this._partial = null;
    }
    const lines = rest.split('\n');
    const last = lines.pop() ?? '';
    for (const line of lines) {
      this._pre.appendChild(this._line(line, true));
    }
    if (last) {
      this._partial = this._line(last, false);
      this._pre.appendChild(this._partial);
    }
    while (this._pre.childElementCount > MAX_LINES) {
      this._pre.firstElementChild?.remove();
    }
    if (atEnd) {
      this.node.scrollTop = this.node.scrollHeight;
    }
  }

  private _line(text: string, complete: boolean): HTMLSpanElement {
    const span = document.createElement('span');
    span.className = 'jp-SandboxLogLine';
    span.dataset.text = text;
    span.textContent = complete ? `${text}\n` : text;
    const lower = text.toLowerCase();
    const note = this._notes.find(n => lower.includes(n.match));
    if (note) {
      span.classList.add('jp-mod-harmless');
      span.title = `Expected under gVisor: ${note.why}`;
    }
    return span;
  }

  private _setStatus(state: 'following' | 'ended' | 'gone', text: string): void {
    this._status.dataset.state = state;
    this._status.textContent = text;
    if (state === 'gone') {
      this.addClass('jp-mod-gone');
    }
  }

  private _status: HTMLDivElement;
  private _pre: HTMLPreElement;
  private _partial: HTMLSpanElement | null = null;
  private _notes: IHarmlessNote[] = [];
  private _controller: AbortController | null = null;
  private _closed = false;
}

/** What a row's buttons ask for. */
export interface IContainerActions {
  logs: (container: IInnerContainer) => void;
  stop: (container: IInnerContainer) => Promise<void>;
  remove: (container: IInnerContainer) => Promise<void>;
}

/** A sandbox's inner containers, re-read every couple of seconds while visible, with actions per row. */
export class ContainersView extends Widget {
  constructor(
    readonly sandbox: string,
    readonly actions: IContainerActions
  ) {
    super();
    this.addClass('jp-SandboxContainersView');
    this.addClass('jp-SandboxLiveView');
    this._status = document.createElement('div');
    this._status.className = 'jp-SandboxLiveView-status';
    this._empty = document.createElement('p');
    this._empty.textContent = 'No containers in this sandbox.';
    this._table = document.createElement('table');
    const head = this._table.createTHead().insertRow();
    for (const column of [...COLUMNS, '']) {
      const cell = document.createElement('th');
      cell.textContent = column;
      head.appendChild(cell);
    }
    this._body = this._table.createTBody();
    this._empty.hidden = this._table.hidden = true; // until the first reading
    this._status.textContent = 'Reading the containers…';
    this.node.append(this._status, this._empty, this._table);
    this._poll = new Poll({
      auto: false,
      factory: () => this.refresh(),
      frequency: { interval: CONTAINERS_INTERVAL_SECONDS * 1000, backoff: false },
      name: 'jupyter-sandbox:containers',
      standby: () => !this.isVisible || 'when-hidden'
    });
  }

  /** Read the containers now, and every couple of seconds after while visible. */
  start(): void {
    void this._poll.start();
  }

  /** Read the containers again (after an action, or on the poll). */
  async refresh(): Promise<void> {
    if (this._gone) {
      return;
    }
    try {
      const containers = await requestAPI<IInnerContainer[]>(
        `sandboxes/${encodeURIComponent(this.sandbox)}/containers?all=true`
      );
      this._show(containers);
      this._setStatus('following', `Refreshed every ${CONTAINERS_INTERVAL_SECONDS} s while shown.`);
    } catch (error) {
      if (isGone(error)) {
        this.markGone();
      } else {
        this._setStatus('error', describe(error));
      }
    }
  }

  /** Say the sandbox is gone and stop reading. */
  markGone(): void {
    this._gone = true;
    this._setStatus('gone', goneText(this.sandbox));
    this.addClass('jp-mod-gone');
    this._body.textContent = '';
    this._rows.clear();
    this._table.hidden = true;
    this._empty.hidden = true;
    void this._poll.stop();
  }

  /** Show an error in the status line (the table stays). */
  setError(message: string): void {
    this._setStatus('error', message);
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this._poll.refresh(); // shown again: read now, not at the next tick
  }

  /** Update the rows in place (so a button under the pointer stays the same button). */
  private _show(containers: IInnerContainer[]): void {
    const seen = new Set<string>();
    for (const container of containers) {
      seen.add(container.ID);
      let row = this._rows.get(container.ID);
      if (!row) {
        row = this._row(container);
        this._rows.set(container.ID, row);
        this._body.appendChild(row);
      }
      row.dataset.name = container.Names;
      row.dataset.running = String(isRunning(container));
      COLUMNS.forEach((column, index) => {
        row!.cells[index].textContent = container[column] ?? '';
      });
      (row.querySelector('.jp-SandboxAction-stopContainer') as HTMLButtonElement).hidden = !isRunning(container);
      this._current.set(container.ID, container);
    }
    for (const [id, row] of this._rows) {
      if (!seen.has(id)) {
        row.remove();
        this._rows.delete(id);
        this._current.delete(id);
      }
    }
    this._empty.hidden = containers.length > 0;
    this._table.hidden = containers.length === 0;
  }

  private _row(container: IInnerContainer): HTMLTableRowElement {
    const row = document.createElement('tr');
    row.className = 'jp-SandboxContainer';
    row.dataset.id = container.ID;
    for (let i = 0; i < COLUMNS.length; i++) {
      row.insertCell();
    }
    const actions = row.insertCell();
    actions.className = 'jp-SandboxContainer-actions';
    const current = () => this._current.get(container.ID) ?? container;
    const button = (label: string, className: string, title: string, act: () => void | Promise<void>) => {
      const element = document.createElement('button');
      element.className = `jp-mod-styled ${className}`;
      element.textContent = label;
      element.title = title;
      element.onclick = async () => {
        element.disabled = true;
        try {
          await act();
        } finally {
          element.disabled = false;
        }
      };
      actions.appendChild(element);
      return element;
    };
    button('logs', 'jp-SandboxAction-containerLogs', 'Open its `docker logs`, following', () =>
      this.actions.logs(current())
    );
    button('stop', 'jp-SandboxAction-stopContainer', 'docker stop', async () => {
      await this.actions.stop(current());
      await this.refresh();
    });
    button('remove', 'jp-mod-warn jp-SandboxAction-removeContainer', 'docker rm --force (asks first)', async () => {
      await this.actions.remove(current());
      await this.refresh();
    });
    return row;
  }

  private _setStatus(state: 'following' | 'error' | 'gone', text: string): void {
    this._status.dataset.state = state;
    this._status.textContent = text;
  }

  private _status: HTMLDivElement;
  private _empty: HTMLParagraphElement;
  private _table: HTMLTableElement;
  private _body: HTMLTableSectionElement;
  private _rows = new Map<string, HTMLTableRowElement>();
  private _current = new Map<string, IInnerContainer>();
  private _poll: Poll;
  private _gone = false;
}

/** The columns of `docker ps` shown. */
const COLUMNS = ['ID', 'Image', 'Command', 'Status', 'Names'];

/** Whether `docker ps` shows it running (`Up 3 minutes`, `Up 2 seconds (Paused)`). */
function isRunning(container: IInnerContainer): boolean {
  return (container.State ?? '').toLowerCase() === 'running' || /^up\b/i.test(container.Status ?? '');
}
