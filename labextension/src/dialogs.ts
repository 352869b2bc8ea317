/**
 * The small views the panel opens: the create form and its dialog, and the listening
 * ports (a main-area widget); the live log and containers views are in detail.ts.
 */
import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ICreateRequest, IListeningPort, SandboxAPIError } from './api';

/** Network modes a sandbox can have (the core's NETWORK_MODES; the server may refuse some). */
const NETWORK_MODES = [
  ['sandbox', 'sandbox (internet, not the host or LAN)'],
  ['none', 'none (loopback only)'],
  ['host', 'host (NOT isolated: reaches the host and LAN)']
];

/** What the create form starts with (the "Sandboxes" settings; these defaults without them). */
export interface ICreateDefaults {
  docker: boolean;
  network: string;
}

/** The defaults of schema/plugin.json, for a Lab without the settings registry. */
export const CREATE_DEFAULTS: ICreateDefaults = { docker: true, network: 'sandbox' };

/** The form fields a server error can name (`field` of a 400), besides `docker`. */
const FORM_FIELDS = ['name', 'image', 'cpu', 'memory', 'pids', 'disk', 'network', 'egress', 'ttl', 'idle_timeout'];

/**
 * The create form: name, image, Docker on/off, cpu, memory, pids, disk, network, egress.
 * A refused create marks the field the server named, with its message and fix beside
 * it, and keeps everything typed (see {@link CreateDialog}).
 */
export class CreateSandboxForm extends Widget {
  constructor(defaults: ICreateDefaults = CREATE_DEFAULTS) {
    super();
    this.addClass('jp-SandboxCreateForm');
    this._name = this._field('Name', 'input', 'name', 'random sb-xxxxxx if empty');
    this._image = this._field('Image', 'input', 'image', 'server default image');
    this._docker = document.createElement('input');
    this._docker.type = 'checkbox';
    this._docker.checked = defaults.docker;
    this._docker.name = 'docker';
    const dockerLabel = document.createElement('label');
    dockerLabel.className = 'jp-SandboxCreateForm-check';
    dockerLabel.append(this._docker, ' Docker daemon inside');
    this.node.appendChild(dockerLabel);
    this._cpu = this._field('CPU', 'input', 'cpu', "e.g. 1, 0.5, 500m or 'unlimited' (server default if empty)");
    this._memory = this._field('Memory', 'input', 'memory', "e.g. 512Mi, 2Gi or 'unlimited' (server default if empty)");
    this._pids = this._field('Processes', 'input', 'pids', "e.g. 512 or 'unlimited' (server default if empty)");
    this._disk = this._field(
      'Disk',
      'input',
      'disk',
      'Docker disk store, e.g. 2Gi (half the memory, or 4Gi, if empty)'
    );
    const network = this._field('Network', 'select', 'network', '') as unknown as HTMLSelectElement;
    for (const [value, text] of NETWORK_MODES) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = text;
      network.appendChild(option);
    }
    if (NETWORK_MODES.some(([value]) => value === defaults.network)) {
      network.value = defaults.network;
    }
    this._network = network;
    this._egress = this._field(
      'Egress',
      'input',
      'egress',
      'public (default), none, or CIDR / host:port, comma-separated'
    );
    this._warning = document.createElement('p');
    this._warning.className = 'jp-SandboxError jp-SandboxCreateForm-warning';
    this.node.appendChild(this._warning);
    const update = () => {
      this._warning.textContent =
        network.value === 'host'
          ? "Warning: network 'host' puts the sandbox in the host's network namespace: code inside reaches the host's services (this Jupyter server included) and the LAN."
          : '';
      this._egress.disabled = network.value !== 'sandbox';
    };
    network.addEventListener('change', update);
    update();
    this._ttl = this._field('Time to live', 'input', 'ttl', 'removed after, e.g. 2h or 1d (server default if empty)');
    this._idle = this._field('Idle timeout', 'input', 'idle_timeout', 'paused after this long unused, e.g. 30m');
    this._error = document.createElement('p');
    this._error.className = 'jp-SandboxError jp-SandboxCreateForm-error';
    this._error.setAttribute('role', 'alert');
    this.node.appendChild(this._error);
  }

  /**
   * Show why the server refused the create: next to the field it names (marked
   * invalid and focused), else below the form.  Clears any earlier error.
   */
  showError(error: unknown): void {
    this.clearError();
    const api = error instanceof SandboxAPIError ? error : null;
    let field = api?.field && FORM_FIELDS.includes(api.field) ? api.field : '';
    if (!field && api?.code === 'exists') {
      field = 'name'; // the name is taken
    }
    const text = api ? api.fullMessage : String(error);
    const input = field ? this.node.querySelector<HTMLInputElement>(`[name="${field}"]`) : null;
    if (!input) {
      this._error.textContent = text;
      return;
    }
    input.classList.add('jp-mod-invalid');
    input.setAttribute('aria-invalid', 'true');
    const note = document.createElement('span');
    note.className = 'jp-SandboxError jp-SandboxCreateForm-fieldError';
    note.dataset.field = field;
    note.textContent = text;
    input.parentElement!.appendChild(note);
    input.focus();
    input.addEventListener('input', () => this.clearError(), { once: true });
  }

  /** Remove the marks of a refused create. */
  clearError(): void {
    this._error.textContent = '';
    for (const input of Array.from(this.node.querySelectorAll('.jp-mod-invalid'))) {
      input.classList.remove('jp-mod-invalid');
      input.removeAttribute('aria-invalid');
    }
    for (const note of Array.from(this.node.querySelectorAll('.jp-SandboxCreateForm-fieldError'))) {
      note.remove();
    }
  }

  /** The request body: only the fields filled in. */
  getValue(): ICreateRequest {
    const body: ICreateRequest = { docker: this._docker.checked, network: this._network.value };
    const text = (input: HTMLInputElement) => input.value.trim();
    if (text(this._name)) {
      body.name = text(this._name);
    }
    if (text(this._image)) {
      body.image = text(this._image);
    }
    if (text(this._cpu)) {
      body.cpu = text(this._cpu);
    }
    if (text(this._memory)) {
      body.memory = text(this._memory);
    }
    if (text(this._egress) && this._network.value === 'sandbox') {
      body.egress = text(this._egress);
    }
    if (text(this._pids)) {
      body.pids = text(this._pids);
    }
    if (text(this._disk)) {
      body.disk = text(this._disk);
    }
    if (text(this._ttl)) {
      body.ttl = text(this._ttl);
    }
    if (text(this._idle)) {
      body.idle_timeout = text(this._idle);
    }
    return body;
  }

  private _field(title: string, tag: 'input' | 'select', name: string, placeholder: string): HTMLInputElement {
    const label = document.createElement('label');
    label.className = 'jp-SandboxCreateForm-field';
    const span = document.createElement('span');
    span.textContent = title;
    const element = document.createElement(tag) as HTMLInputElement;
    element.name = name;
    element.className = tag === 'input' ? 'jp-mod-styled jp-InputGroup' : 'jp-mod-styled';
    if (placeholder) {
      element.placeholder = placeholder;
    }
    label.append(span, element);
    this.node.appendChild(label);
    return element;
  }

  private _name: HTMLInputElement;
  private _image: HTMLInputElement;
  private _docker: HTMLInputElement;
  private _cpu: HTMLInputElement;
  private _memory: HTMLInputElement;
  private _pids: HTMLInputElement;
  private _disk: HTMLInputElement;
  private _network: HTMLSelectElement;
  private _egress: HTMLInputElement;
  private _warning: HTMLParagraphElement;
  private _ttl: HTMLInputElement;
  private _idle: HTMLInputElement;
  private _error: HTMLParagraphElement;
}

/**
 * The create dialog: "Create" sends the form and closes only once the server
 * accepted it; a refusal stays in the dialog, on the field it names.
 */
export class CreateDialog extends Dialog<ICreateRequest> {
  /**
   * @param form - the form (its values are kept across refusals)
   * @param submit - sends a request; resolves once accepted, throws the server's error otherwise
   */
  constructor(
    private readonly form: CreateSandboxForm,
    private readonly submit: (body: ICreateRequest) => Promise<void>
  ) {
    super({
      title: 'Create a sandbox',
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Create' })]
    });
    this.addClass('jp-SandboxCreateDialog');
  }

  /** "Create" (the default button, index 1) waits for the server; anything else closes at once. */
  resolve(index?: number): void {
    if ((index ?? 1) !== 1) {
      super.resolve(index);
      return;
    }
    if (this._busy) {
      return;
    }
    this._busy = true;
    this.node.classList.add('jp-mod-busy');
    this.form.clearError();
    this.submit(this.form.getValue())
      .then(() => super.resolve(index))
      .catch(error => this.form.showError(error))
      .finally(() => {
        this._busy = false;
        this.node.classList.remove('jp-mod-busy');
      });
  }

  private _busy = false;
}

/** A sandbox's listening ports, each with buttons to open it in a Lab tab or a browser tab. */
export class PortsView extends Widget {
  /**
   * @param onOpen - called with a port to open in a Lab tab
   * @param onRefresh - called to list the ports again
   */
  constructor(
    private readonly onOpen: (port: IListeningPort) => void,
    private readonly onRefresh: () => void
  ) {
    super();
    this.addClass('jp-SandboxPortsView');
  }

  /** Show these ports (or a line saying there are none). */
  setPorts(ports: IListeningPort[]): void {
    this.node.textContent = '';
    this.node.appendChild(this._refreshButton());
    if (ports.length === 0) {
      const empty = document.createElement('p');
      empty.textContent = 'Nothing listens on a TCP port in this sandbox yet.';
      this.node.appendChild(empty);
      return;
    }
    const table = document.createElement('table');
    const head = table.createTHead().insertRow();
    for (const column of ['Port', 'Listening on', '']) {
      const cell = document.createElement('th');
      cell.textContent = column;
      head.appendChild(cell);
    }
    const body = table.createTBody();
    for (const port of ports) {
      const row = body.insertRow();
      row.dataset.port = String(port.port);
      row.insertCell().textContent = String(port.port);
      row.insertCell().textContent = port.addresses.join(', ');
      const actions = row.insertCell();
      if (port.reachable) {
        const open = document.createElement('button');
        open.className = 'jp-mod-styled jp-SandboxAction-openPort';
        open.textContent = 'open in a tab';
        open.onclick = () => this.onOpen(port);
        const link = document.createElement('a');
        link.href = port.url;
        link.target = '_blank';
        link.rel = 'noopener';
        link.textContent = 'browser tab';
        actions.append(open, ' ', link);
      } else {
        actions.textContent = 'loopback only: make it listen on 0.0.0.0 to open it';
      }
    }
    this.node.appendChild(table);
  }

  /** Show an error instead of the table. */
  setError(message: string): void {
    this.node.textContent = '';
    this.node.appendChild(this._refreshButton());
    const error = document.createElement('p');
    error.className = 'jp-SandboxError';
    error.textContent = message;
    this.node.appendChild(error);
  }

  private _refreshButton(): HTMLButtonElement {
    const button = document.createElement('button');
    button.className = 'jp-mod-styled jp-SandboxAction-refreshPorts';
    button.textContent = 'refresh';
    button.onclick = () => this.onRefresh();
    return button;
  }
}
