/**
 * `%%sandbox_docker` cells highlighted as shell in JupyterLab 4's editors.
 *
 * Lab 4 highlights a whole code cell in the kernel's language, cell magics
 * included (jupyterlab/jupyterlab#15324), so a cell of docker command lines
 * showed as broken Python.  This editor extension (added through Lab's
 * `IEditorExtensionRegistry`) watches the cell's first line: while it starts
 * with a shell cell magic, the cell's language is Lab's own Shell language
 * (from `IEditorLanguageRegistry`: no grammar of ours), set in a compartment
 * of higher precedence than the cell's language; otherwise the compartment is empty.
 */
import { Compartment, Extension, Prec, Text } from '@codemirror/state';
import { EditorView, ViewPlugin, ViewUpdate } from '@codemirror/view';
import { EditorExtensionRegistry, IEditorExtensionRegistry, IEditorLanguageRegistry } from '@jupyterlab/codemirror';

/** Cell magics whose body is shell-like lines (each line a docker command). */
export const SHELL_CELL_MAGICS = ['%%sandbox_docker'];

/** Whether a document's first line starts one of the shell cell magics. */
export function isShellMagicCell(doc: Text): boolean {
  const first = doc.line(1).text.trimStart();
  return SHELL_CELL_MAGICS.some(magic => first === magic || first.startsWith(`${magic} `));
}

/**
 * The editor extension: a compartment holding the shell language while the first line
 * is a shell cell magic, and a view plugin keeping it so as the first line changes.
 *
 * @param languages - Lab's language registry (its Shell language is loaded on first use)
 */
export function shellMagicExtension(languages: IEditorLanguageRegistry): Extension {
  const compartment = new Compartment();
  let shell: Promise<Extension> | null = null;
  const shellLanguage = (): Promise<Extension> => {
    shell ??= languages
      .getLanguage('shell')
      .then(language => (language?.support ? Prec.highest(language.support) : []));
    return shell;
  };

  const plugin = ViewPlugin.fromClass(
    class {
      constructor(readonly view: EditorView) {
        this.sync();
      }

      update(update: ViewUpdate): void {
        if (update.docChanged) {
          this.sync();
        }
      }

      /** Put the shell language in (or take it out) if the first line asks for a change; never during an update. */
      sync(): void {
        const wanted = isShellMagicCell(this.view.state.doc);
        if (wanted === this.active) {
          return;
        }
        this.active = wanted;
        void (wanted ? shellLanguage() : Promise.resolve<Extension>([])).then(extension => {
          if (this.active === wanted && !this.destroyed) {
            this.view.dispatch({ effects: compartment.reconfigure(extension) });
          }
        });
      }

      destroy(): void {
        this.destroyed = true;
      }

      active = false;
      destroyed = false;
    }
  );
  return [compartment.of([]), plugin];
}

/**
 * Register the extension for every code editor Lab creates (cells, consoles, files):
 * it does nothing unless the first line is a shell cell magic.
 */
export function registerShellMagicHighlighting(
  extensions: IEditorExtensionRegistry,
  languages: IEditorLanguageRegistry
): void {
  extensions.addExtension({
    name: 'jupyter-sandbox:shell-cell-magics',
    factory: () => EditorExtensionRegistry.createImmutableExtension(shellMagicExtension(languages))
  });
}
