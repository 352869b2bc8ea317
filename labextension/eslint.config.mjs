// ESLint for the Lab extension's TypeScript, after jupyterlab/extension-template:
// eslint's and typescript-eslint's recommended rules, React's and the hooks' rules,
// and the template's few additions.  Formatting is prettier's (`npm run lint:check`
// runs both); eslint-config-prettier turns off the rules that would fight it.
import js from '@eslint/js';
import prettierConfig from 'eslint-config-prettier';
import react from 'eslint-plugin-react';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib', 'node_modules', '**/*.js', '**/*.d.ts'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  react.configs.flat.recommended,
  reactHooks.configs.flat.recommended,
  { settings: { react: { version: 'detect' } } },
  {
    files: ['**/*.ts', '**/*.tsx'],
    rules: {
      // Interfaces are named IThing, as in JupyterLab.
      '@typescript-eslint/naming-convention': [
        'error',
        { selector: 'interface', format: ['PascalCase'], custom: { regex: '^I[A-Z]', match: true } }
      ],
      '@typescript-eslint/no-unused-vars': ['warn', { args: 'none' }],
      '@typescript-eslint/no-explicit-any': 'off',
      // CommandIDs is a namespace, as in JupyterLab's own extensions.
      '@typescript-eslint/no-namespace': 'off',
      curly: ['error', 'all'],
      eqeqeq: 'error',
      'prefer-arrow-callback': 'error'
    }
  },
  prettierConfig
);
