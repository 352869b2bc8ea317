/**
 * The panel's actions as commands, so the command palette and the panel's
 * buttons do the same thing: create, terminate, dockerd log, inner containers,
 * listening ports and opening one in a Lab tab, pause and resume, snapshots and forks.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, InputDialog, MainAreaWidget, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { IFrame } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  ICreateRequest,
  IInnerContainer,
  IListeningPort,
  ISandboxInfo,
  SandboxAPIError,
  proxyUrl,
  requestAPI
} from './api';
import { ContainersView, LogView } from './detail';
import { CREATE_DEFAULTS, CreateDialog, CreateSandboxForm, ICreateDefaults, PortsView } from './dialogs';
import { SandboxModel } from './model';
import { OPEN_TERMINAL, addTerminalCommand } from './terminal';

/** Command ids (all under the extension's npm name). */
export namespace CommandIDs {
  export const open = 'jupyter-sandbox:open';
  export const create = 'jupyter-sandbox:create';
  export const refresh = 'jupyter-sandbox:refresh';
  export const terminate = 'jupyter-sandbox:terminate';
  export const dismiss = 'jupyter-sandbox:dismiss';
  export const logs = 'jupyter-sandbox:logs';
  export const containers = 'jupyter-sandbox:containers';
  export const containerLogs = 'jupyter-sandbox:container-logs';
  export const ports = 'jupyter-sandbox:ports';
  export const openPort = 'jupyter-sandbox:open-port';
  export const pause = 'jupyter-sandbox:pause';
  export const resume = 'jupyter-sandbox:resume';
  export const snapshot = 'jupyter-sandbox:snapshot';
  export const fork = 'jupyter-sandbox:fork';
  export const terminal = OPEN_TERMINAL;
}

/** A snapshot as ``GET /sandbox/api/snapshots`` lists it. */
interface ISnapshotInfo {
  tag: string;
  source: string;
  size: number;
  seconds: number;
  created: number;
  spec: { docker: boolean };
}

/**
 * What a page from a sandbox may do in its Lab tab: run scripts, forms, popups and downloads,
 * but in an origin of its own (no `allow-same-origin`), so it cannot act as you on this server.
 */
const PORT_FRAME_SANDBOX: IFrame.SandboxExceptions[] = [
  'allow-scripts',
  'allow-forms',
  'allow-popups',
  'allow-modals',
  'allow-downloads'
];

/** Commands offered in the palette. */
export const PALETTE_COMMANDS = [
  CommandIDs.open,
  CommandIDs.create,
  CommandIDs.refresh,
  CommandIDs.terminate,
  CommandIDs.logs,
  CommandIDs.containers,
  CommandIDs.ports,
  CommandIDs.openPort,
  CommandIDs.pause,
  CommandIDs.resume,
  CommandIDs.snapshot,
  CommandIDs.fork,
  CommandIDs.terminal
];

/** The notebook whose kernel created a sandbox (the server's `used_by`), or null. */
async function notebookUsing(name: string): Promise<string | null> {
  try {
    return (await requestAPI<ISandboxInfo>(`sandboxes/${encodeURIComponent(name)}`)).used_by ?? null;
  } catch {
    return null; // the confirmation goes ahead without it
  }
}

/** The error text to show: the server's message and its fix. */
function describe(error: unknown): string {
  return error instanceof SandboxAPIError ? error.fullMessage : String(error);
}

/**
 * Register the commands.
 *
 * @param app - the application
 * @param model - the sandboxes model the panel shows
 * @param openPanel - reveals the side panel
 * @param createDefaults - what the create dialog starts with (read at each opening, so settings apply at once)
 */
export function addCommands(
  app: JupyterFrontEnd,
  model: SandboxModel,
  openPanel: () => void,
  createDefaults: () => ICreateDefaults = () => CREATE_DEFAULTS
): void {
  const { commands, shell } = app;

  /** Show a view in a closable main-area tab. */
  function openInMainArea(view: Widget, id: string, label: string): void {
    const widget = new MainAreaWidget({ content: view });
    widget.id = id;
    widget.title.label = label;
    widget.title.closable = true;
    shell.add(widget, 'main');
  }

  /** The name passed by the panel, or one picked from a list (palette). */
  async function pickName(args: any, title: string, dockerOnly = false): Promise<string | null> {
    if (typeof args.name === 'string' && args.name) {
      return args.name;
    }
    const names = model.sandboxes.filter(s => s.state !== 'gone' && (!dockerOnly || s.docker)).map(s => s.name);
    if (names.length === 0) {
      await showErrorMessage(title, 'There is no sandbox to choose.');
      return null;
    }
    const result = await InputDialog.getItem({ title, items: names });
    return result.button.accept ? result.value : null;
  }

  /** Start a create (a fork too) and show its card at once, on top and highlighted; throws the server's refusal. */
  async function startCreate(body: ICreateRequest | Record<string, string>): Promise<void> {
    const answer = await requestAPI<{ name: string; spec: any; warnings?: string[] }>('sandboxes', {
      method: 'POST',
      body: JSON.stringify(body)
    });
    for (const warning of answer.warnings ?? []) {
      Notification.warning(warning, { autoClose: false });
    }
    model.expect({
      name: answer.name,
      image: answer.spec.image,
      docker: answer.spec.docker,
      network: answer.spec.network,
      owner: 'server'
    });
  }

  /** A create outside the form (a fork): a refusal says why, naming the field. */
  async function postCreate(body: ICreateRequest | Record<string, string>): Promise<void> {
    try {
      await startCreate(body);
    } catch (error) {
      const field = error instanceof SandboxAPIError && error.field ? ` (field “${error.field}”)` : '';
      await showErrorMessage(`Could not create the sandbox${field}`, describe(error));
    }
  }

  addTerminalCommand(app, args => pickName(args, 'Open a terminal in which sandbox?'));

  commands.addCommand(CommandIDs.open, {
    label: 'Show Sandboxes Panel',
    caption: 'Show the gVisor sandboxes panel',
    execute: () => openPanel()
  });

  commands.addCommand(CommandIDs.refresh, {
    label: 'Refresh Sandboxes',
    execute: () => model.refresh()
  });

  commands.addCommand(CommandIDs.create, {
    label: 'Create Sandbox…',
    caption: 'Create a gVisor sandbox, optionally with its own Docker daemon',
    execute: async () => {
      openPanel();
      // The dialog stays open on a refusal, with the field marked and what was typed kept.
      await new CreateDialog(new CreateSandboxForm(createDefaults()), startCreate).launch();
    }
  });

  commands.addCommand(CommandIDs.terminate, {
    label: 'Terminate Sandbox…',
    execute: async args => {
      const name = await pickName(args, 'Terminate which sandbox?');
      if (!name) {
        return;
      }
      const usedBy = await notebookUsing(name);
      const confirm = await showDialog({
        title: 'Terminate sandbox',
        body:
          `Terminate “${name}”? ` +
          (usedBy ? `It is used by notebook ${usedBy} (its kernel created it). ` : '') +
          'It is removed with everything in it, inner containers and images included.',
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Terminate' })]
      });
      if (!confirm.button.accept) {
        return;
      }
      try {
        await requestAPI<void>(`sandboxes/${encodeURIComponent(name)}`, { method: 'DELETE' });
        model.dismiss(name);
      } catch (error) {
        await showErrorMessage(`Could not terminate ${name}`, describe(error));
      }
    }
  });

  for (const [id, action, label] of [
    [CommandIDs.pause, 'pause', 'Pause Sandbox…'],
    [CommandIDs.resume, 'resume', 'Resume Sandbox…']
  ]) {
    commands.addCommand(id, {
      label,
      caption:
        action === 'pause'
          ? 'Freeze a sandbox: no CPU, memory and inner containers kept; any use resumes it'
          : 'Unfreeze a paused sandbox',
      execute: async args => {
        const name = await pickName(args, `${action === 'pause' ? 'Pause' : 'Resume'} which sandbox?`);
        if (!name) {
          return;
        }
        try {
          await requestAPI<unknown>(`sandboxes/${encodeURIComponent(name)}/${action}`, { method: 'POST', body: '' });
          await model.refresh();
        } catch (error) {
          await showErrorMessage(`Could not ${action} ${name}`, describe(error));
        }
      }
    });
  }

  commands.addCommand(CommandIDs.snapshot, {
    label: 'Snapshot Sandbox…',
    caption: 'Checkpoint a running sandbox whole (inner daemon, images, running containers); it keeps running',
    execute: async args => {
      const name = await pickName(args, 'Snapshot which sandbox?');
      if (!name) {
        return;
      }
      const tag = await InputDialog.getText({
        title: `Snapshot ${name}`,
        label: 'Tag (lowercase letters, digits, _ . -)',
        placeholder: 'e.g. with-images'
      });
      if (!tag.button.accept || !tag.value) {
        return;
      }
      const id = Notification.emit(`Snapshotting ${name}…`, 'in-progress', { autoClose: false });
      try {
        const made = await requestAPI<ISnapshotInfo>(`sandboxes/${encodeURIComponent(name)}/snapshots`, {
          method: 'POST',
          body: JSON.stringify({ tag: tag.value })
        });
        Notification.update({
          id,
          message: `Snapshot ${made.tag} of ${name}: ${(made.size / 1e6).toFixed(0)} MB in ${made.seconds.toFixed(2)} s`,
          type: 'success',
          autoClose: 5000
        });
      } catch (error) {
        Notification.dismiss(id);
        await showErrorMessage(`Could not snapshot ${name}`, describe(error));
      }
    }
  });

  commands.addCommand(CommandIDs.fork, {
    label: 'New Sandbox from Snapshot…',
    caption: 'Fork a snapshot: a new sandbox with its inner daemon, images and running containers restored',
    execute: async () => {
      openPanel();
      let found: ISnapshotInfo[];
      try {
        found = await requestAPI<ISnapshotInfo[]>('snapshots');
      } catch (error) {
        await showErrorMessage('Could not list the snapshots', describe(error));
        return;
      }
      if (found.length === 0) {
        await showErrorMessage(
          'New sandbox from snapshot',
          'There are no snapshots yet: snapshot a running sandbox first.'
        );
        return;
      }
      const labels = found.map(s => `${s.tag} (of ${s.source}, ${(s.size / 1e6).toFixed(0)} MB)`);
      const picked = await InputDialog.getItem({ title: 'Fork which snapshot?', items: labels });
      if (!picked.button.accept || picked.value === null) {
        return;
      }
      const snapshot = found[labels.indexOf(picked.value)];
      const named = await InputDialog.getText({
        title: `New sandbox from ${snapshot.tag}`,
        label: 'Name (empty: a random one)',
        placeholder: 'e.g. copy1'
      });
      if (!named.button.accept) {
        return;
      }
      const body: Record<string, string> = { snapshot: snapshot.tag };
      if (named.value) {
        body.name = named.value;
      }
      await postCreate(body);
    }
  });

  commands.addCommand(CommandIDs.dismiss, {
    label: 'Dismiss Sandbox',
    execute: async args => {
      const name = String(args.name ?? '');
      const info = model.get(name);
      if (info && info.state === 'failed' && !info.container_id) {
        // The server keeps a failed create on show until it is dismissed.
        await requestAPI<void>(`sandboxes/${encodeURIComponent(name)}`, { method: 'DELETE' }).catch(() => undefined);
      }
      model.dismiss(name);
    }
  });

  /** Show a view in a main-area tab, or bring its tab forward if it is open already. */
  function openOnce(view: Widget & { start(): void }, id: string, label: string): void {
    const open = Array.from(shell.widgets('main')).find(widget => widget.id === id);
    if (open) {
      view.dispose();
      shell.activateById(id);
      return;
    }
    openInMainArea(view, id, label);
    view.start();
  }

  commands.addCommand(CommandIDs.logs, {
    label: 'Show Sandbox dockerd Log…',
    caption: 'Follow the Docker daemon log of a sandbox (lines expected under gVisor dimmed)',
    execute: async args => {
      const name = await pickName(args, 'dockerd log of which sandbox?', true);
      if (!name) {
        return;
      }
      const view = new LogView(
        {
          sandbox: name,
          endPoint: `sandboxes/${encodeURIComponent(name)}/logs?follow=true&lines=500`,
          reconnect: true,
          endedText: 'The log stream ended.'
        },
        'jp-SandboxLogView'
      );
      openOnce(view, `jupyter-sandbox-log-${name}`, `dockerd log: ${name}`);
    }
  });

  commands.addCommand(CommandIDs.containerLogs, {
    label: 'Show Inner Container Logs',
    execute: args => {
      const name = String(args.name ?? '');
      const container = String(args.container ?? '');
      if (!name || !container) {
        return;
      }
      const path = `sandboxes/${encodeURIComponent(name)}/containers/${encodeURIComponent(container)}/logs`;
      const view = new LogView(
        {
          sandbox: name,
          endPoint: `${path}?follow=true&lines=500`,
          reconnect: false,
          endedText: `Container ${container} stopped: its log ends here.`
        },
        'jp-SandboxContainerLogView'
      );
      openOnce(view, `jupyter-sandbox-container-log-${name}-${container}`, `logs: ${name}/${container}`);
    }
  });

  commands.addCommand(CommandIDs.containers, {
    label: 'List Sandbox Containers…',
    caption: 'The inner containers of a sandbox, kept current, with logs, stop and remove',
    execute: async args => {
      const name = await pickName(args, 'Containers of which sandbox?', true);
      if (!name) {
        return;
      }
      const path = (container: IInnerContainer) =>
        `sandboxes/${encodeURIComponent(name)}/containers/${encodeURIComponent(container.ID)}`;
      const label = (container: IInnerContainer) => container.Names || container.ID;
      const view = new ContainersView(name, {
        logs: container => void commands.execute(CommandIDs.containerLogs, { name, container: label(container) }),
        stop: async container => {
          try {
            await requestAPI<void>(`${path(container)}/stop`, { method: 'POST', body: '' });
          } catch (error) {
            view.setError(`Could not stop ${label(container)}: ${describe(error)}`);
          }
        },
        remove: async container => {
          const confirm = await showDialog({
            title: 'Remove container',
            body: `Remove container “${label(container)}” (${container.Image}) from sandbox “${name}”? A running one is killed first.`,
            buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })]
          });
          if (!confirm.button.accept) {
            return;
          }
          try {
            await requestAPI<void>(path(container), { method: 'DELETE' });
          } catch (error) {
            view.setError(`Could not remove ${label(container)}: ${describe(error)}`);
          }
        }
      });
      model.changed.connect(() => {
        if (!view.isDisposed && model.get(name)?.state === 'gone') {
          view.markGone();
        }
      }, view);
      openOnce(view, `jupyter-sandbox-containers-${name}`, `containers: ${name}`);
    }
  });

  commands.addCommand(CommandIDs.ports, {
    label: 'List Sandbox Ports…',
    caption: 'The TCP ports listening in a sandbox, to open through Jupyter',
    execute: async args => {
      const name = await pickName(args, 'Ports of which sandbox?');
      if (!name) {
        return;
      }
      const open = (port: IListeningPort) => void commands.execute(CommandIDs.openPort, { name, port: port.port });
      const load = async () => {
        try {
          view.setPorts(await requestAPI<IListeningPort[]>(`sandboxes/${encodeURIComponent(name)}/ports`));
        } catch (error) {
          view.setError(describe(error));
        }
      };
      const view = new PortsView(open, () => void load());
      openInMainArea(view, `jupyter-sandbox-ports-${name}`, `ports: ${name}`);
      await load();
    }
  });

  commands.addCommand(CommandIDs.openPort, {
    label: 'Open Sandbox Port in a Tab…',
    execute: async args => {
      const name = await pickName(args, 'Open a port of which sandbox?');
      if (!name) {
        return;
      }
      let port = Number(args.port);
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        const answer = await InputDialog.getNumber({ title: `Port of ${name} to open`, value: 8000 });
        if (!answer.button.accept || answer.value === null) {
          return;
        }
        port = answer.value;
      }
      const frame = new IFrame({ sandbox: PORT_FRAME_SANDBOX, referrerPolicy: 'no-referrer' });
      frame.url = proxyUrl(name, port);
      frame.addClass('jp-SandboxPortFrame');
      openInMainArea(frame, `jupyter-sandbox-port-${name}-${port}`, `${name}:${port}`);
    }
  });
}
