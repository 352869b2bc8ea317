/**
 * jupyter-sandbox's JupyterLab extension: the "Sandboxes" side panel and its
 * commands, fed by the server extension's REST API and jupyter-server's event bus.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorExtensionRegistry, IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { registerShellMagicHighlighting } from './cellmagic';
import { PALETTE_COMMANDS, addCommands } from './commands';
import { CREATE_DEFAULTS, ICreateDefaults } from './dialogs';
import { filesPlugin } from './files';
import { SandboxModel } from './model';
import { SandboxPanel } from './panel';
import { addStatusItem } from './statusbar';
import { addTerminalRenderer } from './terminal';
import { UsageModel } from './usage';

/** A box inside a shield: an isolated sandbox. */
const sandboxIcon = new LabIcon({
  name: 'jupyter-sandbox:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M12 1 3 5v6c0 5.5 3.8 10.7 9 12 5.2-1.3 9-6.5 9-12V5l-9-4zm0 2.2 7 3.1V11c0 4.5-3 8.7-7 9.9-4-1.2-7-5.4-7-9.9V6.3l7-3.1z"/>' +
    '<path class="jp-icon3" fill="#616161" d="M8 9.5 12 7.5l4 2v4.5l-4 2-4-2V9.5zm1.5 1v2.6l2.5 1.3v-2.6l-2.5-1.3z"/>' +
    '</svg>'
});

/** Rank of the panel in the left area (after the file browser and running sessions). */
const PANEL_RANK = 700;

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-sandbox:plugin',
  description: 'A side panel listing gVisor sandboxes with their live startup phases.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry, IStatusBar, IRenderMimeRegistry],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    const model = new SandboxModel(app.serviceManager.events);
    let panel: SandboxPanel | null = null;
    const usage = new UsageModel(model, () => !!panel?.isVisible);
    panel = new SandboxPanel(model, app.commands, usage);
    panel.id = 'jupyter-sandbox-panel';
    panel.title.icon = sandboxIcon;
    panel.title.caption = 'Sandboxes';
    app.shell.add(panel, 'left', { rank: PANEL_RANK });
    if (restorer) {
      restorer.add(panel, 'jupyter-sandbox-panel');
    }
    // The create dialog's defaults: schema/plugin.json's settings, kept current; the built-in
    // ones without a settings registry or when the settings cannot be loaded.
    let createDefaults: ICreateDefaults = CREATE_DEFAULTS;
    if (settingRegistry) {
      settingRegistry
        .load(plugin.id)
        .then(settings => {
          const read = () => {
            createDefaults = {
              docker: settings.get('docker').composite as boolean,
              network: settings.get('network').composite as string
            };
            model.removedKeepSeconds = (settings.get('removedKeepMinutes').composite as number) * 60;
          };
          read();
          settings.changed.connect(read);
        })
        .catch(reason => console.warn('jupyter-sandbox: settings not loaded, using the defaults', reason));
    }
    addCommands(
      app,
      model,
      () => app.shell.activateById(panel.id),
      () => createDefaults
    );
    if (statusBar) {
      addStatusItem(statusBar, model, () => app.shell.activateById(panel.id));
    }
    if (rendermime) {
      addTerminalRenderer(app, rendermime);
    }
    if (palette) {
      for (const command of PALETTE_COMMANDS) {
        palette.addItem({ command, category: 'Sandboxes' });
      }
    }
    void model.refresh();
  }
};

/** `%%sandbox_docker` cells highlighted as shell (see cellmagic.ts). */
const cellMagicPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-sandbox:cell-magics',
  description: 'Highlights the docker lines of %%sandbox_docker cells as shell, not as Python.',
  autoStart: true,
  requires: [IEditorExtensionRegistry, IEditorLanguageRegistry],
  activate: (app: JupyterFrontEnd, extensions: IEditorExtensionRegistry, languages: IEditorLanguageRegistry) =>
    registerShellMagicHighlighting(extensions, languages)
};

export default [plugin, cellMagicPlugin, filesPlugin];
