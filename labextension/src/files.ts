/**
 * "Sandbox files": a Lab file browser on the `Sandboxes` drive in the left
 * area, and the command a card's "files" button runs to show one sandbox's
 * `/` in it.  Opening, uploading (chunked by Lab for big files), downloading,
 * renaming and deleting are the file browser's own, through the drive.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { FileBrowser, IFileBrowserFactory, Uploader } from '@jupyterlab/filebrowser';
import { ToolbarButton, folderIcon, newFolderIcon, refreshIcon } from '@jupyterlab/ui-components';

import { DRIVE_NAME, SandboxDrive } from './drive';

/** Show a sandbox's files: args `{name}` (none: the list of sandboxes). */
export const FILES_COMMAND = 'jupyter-sandbox:files';

/** The browser's widget id (and the layout restorer's key). */
const BROWSER_ID = 'jupyter-sandbox-files';

/** Rank in the left area: right after the Sandboxes panel. */
const BROWSER_RANK = 701;

/** The toolbar: new folder, upload, refresh. */
function addToolbar(browser: FileBrowser): void {
  browser.toolbar.addItem(
    'new-folder',
    new ToolbarButton({
      icon: newFolderIcon,
      tooltip: 'New folder',
      className: 'jp-SandboxFiles-newFolder',
      onClick: () => void browser.createNewDirectory()
    })
  );
  browser.toolbar.addItem('upload', new Uploader({ model: browser.model }));
  browser.toolbar.addItem(
    'refresh',
    new ToolbarButton({
      icon: refreshIcon,
      tooltip: 'Refresh the listing',
      className: 'jp-SandboxFiles-refresh',
      onClick: () => void browser.model.refresh()
    })
  );
}

export const filesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-sandbox:files',
  description: "A file browser on the sandboxes' files (the `Sandboxes` drive).",
  autoStart: true,
  requires: [IFileBrowserFactory],
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, factory: IFileBrowserFactory, restorer: ILayoutRestorer | null) => {
    app.serviceManager.contents.addDrive(new SandboxDrive());
    const browser = factory.createFileBrowser(BROWSER_ID, { driveName: DRIVE_NAME, restore: false });
    browser.addClass('jp-SandboxFiles');
    browser.title.icon = folderIcon;
    browser.title.caption = 'Sandbox files';
    addToolbar(browser);
    app.shell.add(browser, 'left', { rank: BROWSER_RANK });
    if (restorer) {
      restorer.add(browser, BROWSER_ID);
    }
    app.commands.addCommand(FILES_COMMAND, {
      label: args => (args.name ? `Files of Sandbox ${args.name}` : 'Sandbox Files'),
      execute: async args => {
        app.shell.activateById(browser.id);
        const name = typeof args.name === 'string' ? args.name : '';
        await browser.model.cd(`/${name}`); // resolved within the browser's drive: `Sandboxes:<name>`
      }
    });
  }
};
