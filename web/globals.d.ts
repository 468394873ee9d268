// Types for the JavaScript type check (jsconfig.json, `tsc` in scripts/test.sh's lint
// phase); never loaded by the page.

interface Window {
  /** The page's MedSeg API (web/medseg.js), for other scripts and the browser tests. */
  medseg?: import("./medseg.js").MedSeg;
}
