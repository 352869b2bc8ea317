/**
 * The "Sandboxes" side panel: every sandbox with its status badge, live
 * startup phases, uptime, image and limits, and its actions.
 */
import { ReactWidget } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import React, { useEffect, useState } from 'react';

import { IPhaseCatalog, ISandboxInfo } from './api';
import { SandboxModel } from './model';
import { formatSeconds, phaseRows } from './phases';
import { CommandIDs } from './commands';
import { FILES_COMMAND } from './files';

/** The side panel widget. */
export class SandboxPanel extends ReactWidget {
  constructor(
    readonly model: SandboxModel,
    readonly commands: CommandRegistry
  ) {
    super();
    this.addClass('jp-SandboxPanel');
    model.changed.connect(this.update, this);
  }

  protected render(): JSX.Element {
    return <PanelView model={this.model} commands={this.commands} />;
  }

  dispose(): void {
    this.model.changed.disconnect(this.update, this);
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

function PanelView(props: { model: SandboxModel; commands: CommandRegistry }): JSX.Element {
  const { model, commands } = props;
  const sandboxes = model.sandboxes;
  const now = useNow(sandboxes.some(s => s.state === 'starting' || s.state === 'ready' || !!s.expires));
  return (
    <div className="jp-SandboxPanel-content">
      <header className="jp-SandboxPanel-header">
        <h2>Sandboxes</h2>
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
        <button
          className="jp-mod-styled jp-SandboxPanel-refresh"
          title="Re-read the list from the server"
          onClick={() => void commands.execute(CommandIDs.refresh)}
        >
          ⟳
        </button>
      </header>
      {model.problem && <div className="jp-SandboxPanel-problem">{model.problem}</div>}
      {!model.engine.connected && (
        <div className="jp-SandboxPanel-problem">The server cannot reach the Docker engine: {model.engine.message}</div>
      )}
      {sandboxes.length === 0 ? (
        <p className="jp-SandboxPanel-empty">
          No sandboxes. Create one with “+ New”, the <code>%sandbox</code> magic or <code>jupyter sandbox create</code>.
        </p>
      ) : (
        <ul className="jp-SandboxPanel-list">
          {sandboxes.map(info => (
            <SandboxCard
              key={info.name}
              info={info}
              phases={model.phases}
              now={now}
              commands={commands}
              notice={model.notice(info.name)}
            />
          ))}
        </ul>
      )}
    </div>
  );
}

function SandboxCard(props: {
  info: ISandboxInfo;
  phases: IPhaseCatalog | null;
  now: number;
  commands: CommandRegistry;
  notice?: string;
}): JSX.Element {
  const { info, phases, now, commands, notice } = props;
  const rows = phaseRows(phases, info.docker, info.phases, now);
  const ready = rows.find(r => r.phase === 'ready' && r.status === 'done');
  const startupSeconds = ready
    ? Math.max(0, ...info.phases.filter(p => p.phase === 'ready').map(p => p.elapsed))
    : null;
  const uptime =
    info.started_at && (info.state === 'ready' || info.state === 'starting') ? now - info.started_at : null;
  const limits = [
    info.cpu !== null ? `${info.cpu} CPU` : 'no CPU limit',
    info.memory ? `${info.memory} memory` : 'no memory limit',
    info.pids ? `${info.pids} processes` : 'no process limit',
    ...(info.disk ? [`${info.disk} disk`] : []),
    `network ${info.network || 'none'}${info.network === 'sandbox' && info.egress ? ` (egress ${Array.isArray(info.egress) ? info.egress.join(', ') : info.egress})` : ''}`
  ].join(' · ');
  const left = timeLeft(info, now);
  const run = (id: string) => () => void commands.execute(id, { name: info.name });
  const showPhases = info.state === 'starting' || info.state === 'failed';
  return (
    <li className="jp-SandboxCard" data-sandbox-name={info.name} data-state={info.state}>
      <div className="jp-SandboxCard-title">
        <span className="jp-SandboxCard-name">{info.name}</span>
        <span className={`jp-SandboxBadge jp-mod-${info.state}`} data-state={info.state}>
          {info.state}
        </span>
      </div>
      <div className="jp-SandboxCard-meta">
        <div title="image">
          {info.image || '…'}
          {info.docker ? ' · Docker inside' : ''}
        </div>
        <div>{limits}</div>
        <div className="jp-SandboxCard-times">
          {[
            uptime !== null ? `up ${formatSeconds(uptime)}` : '',
            startupSeconds !== null ? `ready in ${formatSeconds(startupSeconds)}` : '',
            info.owner ? `by ${info.owner}` : ''
          ]
            .filter(part => part)
            .join(' · ')}
        </div>
        {left && <div className="jp-SandboxCard-limits">{left}</div>}
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
        {info.state === 'gone' || (info.state === 'failed' && !info.container_id) ? (
          <button className="jp-mod-styled jp-SandboxAction-dismiss" onClick={run(CommandIDs.dismiss)}>
            dismiss
          </button>
        ) : (
          <button className="jp-mod-styled jp-mod-warn jp-SandboxAction-terminate" onClick={run(CommandIDs.terminate)}>
            terminate
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
    </li>
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
