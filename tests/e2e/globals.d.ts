// Types for the type check of the browser tests (jsconfig.e2e.json): what the tests leave
// on `window` in the page, and the part of WebGPU they look at. Never loaded.

interface Window {
  /** Files made in the page by lib.mjs's putFile / putBytes, by name. */
  __files: Record<string, File>;
  /** The synthetic clip of lib.mjs's makeSyntheticClip. */
  __clip: File;
  /** Counters and results the tests collect from events in the page. */
  __done: number;
  __frames: number;
  __again: number[];
  __prop: Promise<unknown>;
  __events: string[];
  __busy: (string | undefined)[];
  __propagated: number[];
  /** 12-teach: the phases of the run's "finetune" events and the status lines shown. */
  __teach: { phases: string[]; statuses: string[] };
}

interface Navigator {
  /** WebGPU (not in TypeScript's DOM types): only whether an adapter is there. */
  readonly gpu?: { requestAdapter(): Promise<{ info: { vendor: string; architecture: string } } | null> };
}
