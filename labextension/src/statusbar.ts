/**
 * The status bar's sandbox count: how many sandboxes run now (from the panel's
 * live model, so no request of its own); a click shows the panel.
 */
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { SandboxModel } from './model';
import { isRunning } from './usage';

/** The status bar item. */
export class SandboxCountItem extends Widget {
  constructor(
    readonly model: SandboxModel,
    openPanel: () => void
  ) {
    super();
    this.addClass('jp-SandboxStatus');
    this.node.onclick = openPanel;
    model.changed.connect(this._update, this);
    this._update();
  }

  /** Sandboxes running now. */
  get count(): number {
    return this.model.sandboxes.filter(s => isRunning(s.state)).length;
  }

  dispose(): void {
    this.model.changed.disconnect(this._update, this);
    super.dispose();
  }

  private _update(): void {
    const count = this.count;
    this.node.textContent = `Sandboxes: ${count}`;
    this.node.dataset.count = String(count);
    this.node.title = `${count} sandbox${count === 1 ? '' : 'es'} running (click: the Sandboxes panel)`;
  }
}

/** Put the count on the left of the status bar. */
export function addStatusItem(statusBar: IStatusBar, model: SandboxModel, openPanel: () => void): void {
  statusBar.registerStatusItem('jupyter-sandbox:count', {
    item: new SandboxCountItem(model, openPanel),
    align: 'left',
    rank: 50
  });
}
