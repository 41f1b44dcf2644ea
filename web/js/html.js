// Preact + htm: views are functions of state that return a virtual DOM;
// Preact puts text in with text nodes, never by parsing HTML.

import { h, render, Component, Fragment, createRef } from "../vendor/preact/preact.module.js";
import htm from "../vendor/htm/htm.module.js";

export const html = htm.bind(h);
export { render, Component, Fragment, createRef };
