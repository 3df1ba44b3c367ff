/**
 * The models the sample backend starts with: a tiny stand-in for Foundry Local's catalog
 * (ConfigMap `foundry-local-catalog` on Arc). Names are what clients pass as `model`.
 */
export interface ModelRecord {
  readonly name: string;
  readonly displayName: string;
  readonly source: { readonly type: 'foundry-local' } | { readonly type: 'custom'; readonly registry: string; readonly path?: string };
  readonly task: string;
  readonly publisher: string;
  readonly compute: readonly ('cpu' | 'gpu')[];
  readonly version: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** A fixed date, so catalog entries (and `created` in `/v1/models`) are the same on every run. */
export const CATALOG_DATE = '2026-01-01T00:00:00.000Z';

export const CATALOG: readonly ModelRecord[] = [
  catalogModel('phi-4-mini', 'Phi-4-mini-instruct', 'chat-completion', 'Microsoft'),
  catalogModel('qwen2.5-0.5b', 'Qwen2.5-0.5B-Instruct', 'chat-completion', 'Alibaba'),
  catalogModel('all-minilm-l6-v2', 'all-MiniLM-L6-v2', 'embeddings', 'sentence-transformers'),
];

/** The default `model` in the printed examples. */
export const DEFAULT_CHAT_MODEL = 'phi-4-mini';

function catalogModel(name: string, displayName: string, task: string, publisher: string): ModelRecord {
  return {
    name,
    displayName,
    source: { type: 'foundry-local' },
    task,
    publisher,
    compute: ['cpu', 'gpu'],
    version: '1',
    createdAt: CATALOG_DATE,
    updatedAt: CATALOG_DATE,
  };
}
