/**
 * The "Sandboxes" side panel: every sandbox with its status badge, live
 * startup phases, uptime, image and limits, and its actions; live ones first,
 * removed ones in a "Recently removed" group; a filter mine / this server / all.
 */
import { ReactWidget } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import React, { useEffect, useRef, useState } from 'react';

import { IPhaseCatalog, ISandboxInfo } from './api';
import { SandboxModel } from './model';
import { formatSeconds, phaseRows, readyIn } from './phases';
import { CommandIDs } from './commands';
import { FILES_COMMAND } from './files';
import { IUsage, UsageModel, usageText } from './usage';

/** The side panel widget. */
export class SandboxPanel extends ReactWidget {
  constructor(
    readonly model: SandboxModel,
    readonly commands: CommandRegistry,
    readonly usage?: UsageModel
  ) {
    super();
    this.addClass('jp-SandboxPanel');
    model.changed.connect(this.update, this);
    usage?.changed.connect(this.update, this);
  }

  protected render(): JSX.Element {
    return <PanelView model={this.model} commands={this.commands} usage={this.usage} />;
  }

  /** Shown: fresh CPU and memory figures at once (they are read only while the panel is visible). */
  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.usage?.refresh();
  }

  dispose(): void {
    this.model.changed.disconnect(this.update, this);
    this.usage?.changed.disconnect(this.update, this);
    super.dispose();
  }
}

/** A clock that ticks every second while something on screen counts time. */
function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now() / 1000);
  useEffect(() => {
    if (!active) {
      return;
    }
    const timer = setInterval(() => setNow(Date.now() / 1000), 1000);
    return () => clearInterval(timer);
  }, [active]);
  // eslint-disable-next-line react-hooks/purity -- on purpose: a render the model causes shows the time now, ticking or not
  return Math.max(now, Date.now() / 1000);
}

/** Which sandboxes the list shows (see {@link belongs}). */
export type Filter = 'mine' | 'server' | 'all';

const FILTERS: [Filter, string, string][] = [
  ['mine', 'Mine', 'Created from this Lab: the panel, the command palette, the REST API'],
  ['server', 'This server', "Mine, and those of this server's notebooks and terminals"],
  ['all', 'All', "This server's, and your own made outside any server (e.g. the CLI in a plain shell)"]
];

/**
 * Whether a sandbox passes the filter.  "Mine": made by this server itself (owner
 * `server`); "this server": also its kernels' and terminals' (their `server` label is its
 * id, and a server lists no other server's); "all": also the user's own, with no server.
 */
export function belongs(info: ISandboxInfo, filter: Filter): boolean {
  const mine = info.owner === 'server';
  if (filter === 'mine') {
    return mine;
  }
  return filter === 'all' || mine || !!info.server;
}

/** Live ones first (starting, ready, paused), then failed and stopped ones; newest first in each. */
function liveFirst(a: ISandboxInfo, b: ISandboxInfo): number {
  const rank = (s: ISandboxInfo) => (s.state === 'starting' || s.state === 'ready' || s.state === 'paused' ? 0 : 1);
  return rank(a) - rank(b) || (b.created ?? 0) - (a.created ?? 0);
}

function PanelView(props: { model: SandboxModel; commands: CommandRegistry; usage?: UsageModel }): JSX.Element {
  const { model, commands, usage } = props;
  const [filter, setFilter] = useState<Filter>('all');
  const shown = model.sandboxes.filter(s => belongs(s, filter));
  const live = shown.filter(s => s.state !== 'gone').sort(liveFirst);
  const removed = shown
    .filter(s => s.state === 'gone')
    .sort((a, b) => (model.removedAt(b.name) ?? 0) - (model.removedAt(a.name) ?? 0));
  const hidden = model.sandboxes.length - shown.length;
  const now = useNow(
    shown.some(s => s.state === 'starting' || s.state === 'ready' || !!s.expires) || removed.length > 0
  );
  return (
    <div className="jp-SandboxPanel-content">
      <header className="jp-SandboxPanel-header">
        <div className="jp-SandboxPanel-titleRow">
          <h2>Sandboxes</h2>
          <button
            className="jp-mod-styled jp-SandboxPanel-refresh"
            title="Re-read the list from the server"
            aria-label="Refresh"
            onClick={() => void commands.execute(CommandIDs.refresh)}
          >
            ⟳
          </button>
        </div>
        <div className="jp-SandboxPanel-toolbar">
          <button
            className="jp-mod-styled jp-mod-accept jp-SandboxPanel-create"
            title="Create a sandbox"
            onClick={() => void commands.execute(CommandIDs.create)}
          >
            + New
          </button>
          <button
            className="jp-mod-styled jp-SandboxPanel-fork"
            title="A new sandbox from a snapshot: its inner daemon, images and running containers restored"
            onClick={() => void commands.execute(CommandIDs.fork)}
          >
            From snapshot
          </button>
        </div>
        <div className="jp-SandboxPanel-filter" role="radiogroup" aria-label="Show">
          {FILTERS.map(([value, label, title]) => (
            <button
              key={value}
              role="radio"
              aria-checked={filter === value}
              data-filter={value}
              className={`jp-SandboxPanel-filterButton${filter === value ? ' jp-mod-active' : ''}`}
              title={title}
              onClick={() => setFilter(value)}
            >
              {label}
            </button>
          ))}
        </div>
      </header>
      {model.problem && <div className="jp-SandboxPanel-problem">{model.problem}</div>}
      {!model.engine.connected && (
        <div className="jp-SandboxPanel-problem">The server cannot reach the Docker engine: {model.engine.message}</div>
      )}
      {live.length === 0 ? (
        <p className="jp-SandboxPanel-empty">
          {hidden > 0 ? `No sandboxes here (${hidden} hidden by the filter). ` : 'No sandboxes. '}
          Create one with “+ New”, the <code>%sandbox</code> magic or <code>jupyter sandbox create</code>.
        </p>
      ) : (
        <ul className="jp-SandboxPanel-list">
          {live.map(info => (
            <SandboxCard
              key={info.name}
              info={info}
              phases={model.phases}
              now={now}
              commands={commands}
              notice={model.notice(info.name)}
              fresh={model.isFresh(info.name)}
              usage={info.state === 'ready' ? usage?.get(info.name) : undefined}
            />
          ))}
        </ul>
      )}
      {removed.length > 0 && <RemovedGroup removed={removed} model={model} now={now} commands={commands} />}
    </div>
  );
}

/** The "Recently removed" group: one line each, cleared after a few minutes or with "Clear". */
function RemovedGroup(props: {
  removed: ISandboxInfo[];
  model: SandboxModel;
  now: number;
  commands: CommandRegistry;
}): JSX.Element {
  const { removed, model, now, commands } = props;
  return (
    <details className="jp-SandboxPanel-removed" open>
      <summary>
        <span className="jp-SandboxPanel-removedTitle">Recently removed ({removed.length})</span>
        <button
          className="jp-mod-styled jp-SandboxPanel-clearRemoved"
          title={`Forget them now (they go by themselves ${formatSeconds(model.removedKeepSeconds)} after their removal)`}
          onClick={event => {
            event.preventDefault(); // not a toggle of the group
            model.clearRemoved();
          }}
        >
          Clear
        </button>
      </summary>
      <ul className="jp-SandboxPanel-list">
        {removed.map(info => {
          const at = model.removedAt(info.name);
          const ago = at !== undefined ? `removed ${since(now - at / 1000)}` : 'removed';
          return (
            <li
              key={info.name}
              className="jp-SandboxCard jp-mod-removed"
              data-sandbox-name={info.name}
              data-state={info.state}
            >
              <div className="jp-SandboxCard-title">
                <span className="jp-SandboxCard-name" title={info.name}>
                  {info.name}
                </span>
                <span className={`jp-SandboxBadge jp-mod-${info.state}`} data-state={info.state}>
                  {info.state}
                </span>
                <button
                  className="jp-mod-styled jp-SandboxAction-dismiss"
                  title="Forget it"
                  aria-label={`Dismiss ${info.name}`}
                  onClick={() => void commands.execute(CommandIDs.dismiss, { name: info.name })}
                >
                  ✕
                </button>
              </div>
              <div className="jp-SandboxCard-meta jp-SandboxCard-line" title={`${info.image} · ${info.reason}`}>
                {ago}
                {info.image ? ` · ${info.image}` : ''}
              </div>
            </li>
          );
        })}
      </ul>
    </details>
  );
}

function SandboxCard(props: {
  info: ISandboxInfo;
  phases: IPhaseCatalog | null;
  now: number;
  commands: CommandRegistry;
  notice?: string;
  fresh?: boolean;
  usage?: IUsage;
}): JSX.Element {
  const { info, phases, now, commands, notice, fresh, usage } = props;
  const node = useRef<HTMLLIElement>(null);
  useEffect(() => {
    if (fresh) {
      node.current?.scrollIntoView({ block: 'nearest' }); // a create from here is seen at once
    }
  }, [fresh]);
  const rows = phaseRows(phases, info.docker, info.phases, now);
  const uptime =
    info.started_at && (info.state === 'ready' || info.state === 'starting') ? now - info.started_at : null;
  const limits = [
    info.cpu !== null ? `${info.cpu} CPU` : 'no CPU limit',
    info.memory ? `${info.memory} memory` : 'no memory limit',
    info.pids ? `${info.pids} processes` : 'no process limit',
    ...(info.disk ? [`${info.disk} disk`] : []),
    `network ${info.network || 'none'}${info.network === 'sandbox' && info.egress ? ` (egress ${Array.isArray(info.egress) ? info.egress.join(', ') : info.egress})` : ''}`
  ];
  const left = timeLeft(info, now);
  const run = (id: string) => () => void commands.execute(id, { name: info.name });
  const showPhases = info.state === 'starting' || info.state === 'failed';
  const image = `${info.image || '…'}${info.docker ? ' · Docker inside' : ''}`;
  const times = [
    uptime !== null ? `up ${formatSeconds(uptime)}` : '',
    info.state === 'ready' || info.state === 'paused' ? readyIn(info.ready_seconds) : '',
    info.owner ? `by ${info.owner}` : ''
  ].filter(part => part);
  const classes = ['jp-SandboxCard', fresh && info.state === 'starting' ? 'jp-mod-fresh' : ''].join(' ').trim();
  return (
    <li ref={node} className={classes} data-sandbox-name={info.name} data-state={info.state}>
      <div className="jp-SandboxCard-title">
        <span className="jp-SandboxCard-name" title={info.name}>
          {info.name}
        </span>
        <span className={`jp-SandboxBadge jp-mod-${info.state}`} data-state={info.state}>
          {info.state}
        </span>
      </div>
      <div className="jp-SandboxCard-meta">
        <div className="jp-SandboxCard-image jp-SandboxCard-line" title={image}>
          {image}
        </div>
        <div className="jp-SandboxCard-limits" title={limits.join(' · ')}>
          <Parts parts={limits} />
        </div>
        <div className="jp-SandboxCard-times">
          <Parts parts={times} />
        </div>
        {usage && (
          <div className="jp-SandboxCard-usage" title="Live, from the engine's stats; CPU in percent of one CPU">
            {usageText(usage)}
          </div>
        )}
        {left && <div className="jp-SandboxCard-timeLimits">{left}</div>}
        {notice && <div className="jp-SandboxCard-notice">{notice}</div>}
        {info.reason && info.state !== 'ready' && info.state !== 'starting' && (
          <div className="jp-SandboxCard-reason">{info.reason}</div>
        )}
      </div>
      {rows.length > 0 && (
        <details className="jp-SandboxCard-phases" open={showPhases}>
          <summary>Startup phases</summary>
          <ol>
            {rows.map(row => (
              <li
                key={row.phase}
                className={`jp-SandboxPhase jp-mod-${row.status}`}
                data-phase={row.phase}
                data-status={row.status}
                title={row.detail || row.message}
              >
                <span className="jp-SandboxPhase-icon" />
                <span className="jp-SandboxPhase-label">{row.label}</span>
                <span className="jp-SandboxPhase-time">{formatSeconds(row.seconds)}</span>
                {row.status === 'failed' && row.detail && <pre className="jp-SandboxPhase-detail">{row.detail}</pre>}
              </li>
            ))}
          </ol>
        </details>
      )}
      <div className="jp-SandboxCard-actions">
        <div className="jp-SandboxCard-safeActions">
          {info.state === 'ready' && (
            <button
              className="jp-mod-styled jp-SandboxAction-terminal"
              onClick={run(CommandIDs.terminal)}
              title="A shell inside the sandbox, in a Lab terminal"
            >
              terminal
            </button>
          )}
          {info.docker && info.state === 'ready' && (
            <>
              <button className="jp-mod-styled jp-SandboxAction-logs" onClick={run(CommandIDs.logs)}>
                dockerd log
              </button>
              <button className="jp-mod-styled jp-SandboxAction-containers" onClick={run(CommandIDs.containers)}>
                containers
              </button>
            </>
          )}
          {info.state === 'ready' && (info.network === 'sandbox' || info.network === 'host') && (
            <button className="jp-mod-styled jp-SandboxAction-ports" onClick={run(CommandIDs.ports)}>
              ports
            </button>
          )}
          {info.state === 'ready' && (
            <button
              className="jp-mod-styled jp-SandboxAction-pause"
              onClick={run(CommandIDs.pause)}
              title="Freeze it: no CPU; any use resumes it"
            >
              pause
            </button>
          )}
          {info.state === 'ready' && info.network !== 'host' && (
            <button
              className="jp-mod-styled jp-SandboxAction-snapshot"
              onClick={run(CommandIDs.snapshot)}
              title="Checkpoint it whole; it keeps running. Fork it with “From snapshot”"
            >
              snapshot
            </button>
          )}
          {info.state === 'paused' && (
            <button className="jp-mod-styled jp-SandboxAction-resume" onClick={run(CommandIDs.resume)}>
              resume
            </button>
          )}
          {(info.state === 'ready' || info.state === 'paused') && (
            <button
              className="jp-mod-styled jp-SandboxAction-files"
              onClick={run(FILES_COMMAND)}
              title="Browse, open, upload and download its files"
            >
              files
            </button>
          )}
        </div>
        {/* Set apart from the harmless ones, and confirmed: removes it with everything inside. */}
        <div className="jp-SandboxCard-dangerActions">
          {info.state === 'failed' && !info.container_id ? (
            <button className="jp-mod-styled jp-SandboxAction-dismiss" onClick={run(CommandIDs.dismiss)}>
              dismiss
            </button>
          ) : (
            <button
              className="jp-mod-styled jp-mod-warn jp-SandboxAction-terminate"
              title="Remove it and everything in it (asks first)"
              onClick={run(CommandIDs.terminate)}
            >
              terminate
            </button>
          )}
        </div>
      </div>
    </li>
  );
}

/** "just now", "25 s ago", "3 min ago": how long ago, coarsely. */
function since(seconds: number): string {
  if (seconds < 10) {
    return 'just now';
  }
  return seconds < 60 ? `${Math.floor(seconds)} s ago` : `${Math.floor(seconds / 60)} min ago`;
}

/** Parts joined by " · ", each kept whole: a line breaks between parts, never inside one. */
function Parts(props: { parts: string[] }): JSX.Element {
  return (
    <>
      {props.parts.map((part, index) => (
        <React.Fragment key={index}>
          {index > 0 ? ' · ' : ''}
          <span className="jp-SandboxCard-part">{part}</span>
        </React.Fragment>
      ))}
    </>
  );
}

/** "removed in 1h 59m · paused after 29m idle": the time limits with the time left, or '' without any. */
function timeLeft(info: ISandboxInfo, now: number): string {
  const parts: string[] = [];
  if (info.expires) {
    parts.push(`removed in ${formatSeconds(Math.max(0, info.expires - now))} (ttl)`);
  }
  if (info.idle_timeout && info.state === 'ready' && info.last_activity) {
    const idleLeft = Math.max(0, info.last_activity + info.idle_timeout - now);
    parts.push(`paused after ${formatSeconds(idleLeft)} more idle`);
  }
  return parts.join(' · ');
}
