/**
 * A terminal inside a sandbox: the server starts one of its own Jupyter
 * terminals running `docker exec -it` into the sandbox
 * (`POST sandboxes/<name>/terminal`), and Lab's own terminal widget (xterm.js)
 * opens it. `%sandbox shell` outputs show as a button that does the same.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import { IRenderMime, IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { SandboxAPIError, requestAPI } from './api';

/** The command that opens a terminal inside a sandbox (`{ name }`). */
export const OPEN_TERMINAL = 'jupyter-sandbox:terminal';

/** What `%sandbox shell` outputs (`jupyter_sandbox.display.TERMINAL_MIME`): `{ "name": sandbox }`. */
export const TERMINAL_MIME = 'application/vnd.jupyter-sandbox.terminal+json';

/**
 * Register the command.
 *
 * @param pickName - the sandbox named in the arguments, or one the user picks (null: cancelled)
 */
export function addTerminalCommand(app: JupyterFrontEnd, pickName: (args: any) => Promise<string | null>): void {
  app.commands.addCommand(OPEN_TERMINAL, {
    label: args => (args.name ? `Terminal in ${args.name}` : 'Open a Terminal in a Sandbox…'),
    caption: 'A shell inside the sandbox, in a Lab terminal (resize, Ctrl-C and colours work)',
    execute: async args => {
      const name = await pickName(args);
      if (!name) {
        return;
      }
      try {
        const answer = await requestAPI<{ terminal: string }>(`sandboxes/${encodeURIComponent(name)}/terminal`, {
          method: 'POST'
        });
        const widget = await app.commands.execute('terminal:open', { name: answer.terminal });
        labelTerminal(widget, name, answer.terminal);
        return widget;
      } catch (error) {
        const text = error instanceof SandboxAPIError ? error.fullMessage : String(error);
        await showErrorMessage(`Could not open a terminal in ${name}`, text);
      }
    }
  });
}

/** Name the tab after the sandbox (Lab's terminal titles itself "Terminal N" once connected: ours is put back). */
function labelTerminal(widget: any, sandbox: string, terminal: string): void {
  const title = widget?.content?.title;
  if (!title) {
    return;
  }
  const label = `Sandbox ${sandbox}`;
  const keep = () => {
    if (title.label !== label) {
      title.label = label;
    }
  };
  title.caption = `Shell inside sandbox ${sandbox} (Jupyter terminal ${terminal})`;
  title.changed.connect(keep);
  keep();
}

/**
 * Show `%sandbox shell` outputs as a button opening the terminal. Safe for untrusted notebooks:
 * it shows the name as text and does nothing until clicked.
 */
export function addTerminalRenderer(app: JupyterFrontEnd, rendermime: IRenderMimeRegistry): void {
  rendermime.addFactory({ safe: true, mimeTypes: [TERMINAL_MIME], createRenderer: () => new TerminalButton(app) }, 0);
}

/** The button a `%sandbox shell` output shows. */
class TerminalButton extends Widget implements IRenderMime.IRenderer {
  constructor(readonly app: JupyterFrontEnd) {
    super();
    this.addClass('jp-SandboxTerminalOutput');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const name = String((model.data[TERMINAL_MIME] as { name?: string } | undefined)?.name ?? '');
    this.node.textContent = '';
    const button = document.createElement('button');
    button.className = 'jp-mod-styled jp-mod-accept jp-SandboxTerminalOutput-open';
    button.textContent = `Open a terminal in ${name}`;
    button.title = 'A shell inside the sandbox, in a Lab terminal tab';
    button.onclick = () => void this.app.commands.execute(OPEN_TERMINAL, { name });
    this.node.appendChild(button);
  }
}
