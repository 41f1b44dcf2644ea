// The basis: Markdown rendered by markdown-it, then sanitised by DOMPurify,
// and handed to the page as DOM nodes (never as an HTML string).

import markdownit from "../vendor/markdown-it/markdown-it.esm.min.mjs";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";

// Raw HTML in the basis is shown as text (html: false); links are made from
// bare URLs; typographic quotes stay off because Danish and English differ.
const md = markdownit({ html: false, linkify: true, typographer: false, breaks: false });

// Table alignment comes out of markdown-it as a style attribute, which the
// page's Content-Security-Policy (style-src 'self') would refuse: use classes.
md.core.ruler.push("alignment_classes", (state) => {
  for (const token of state.tokens) {
    const style = token.attrGet && token.attrGet("style");
    if (style) {
      const match = /text-align:\s*(left|right|center)/.exec(style);
      token.attrs = token.attrs.filter(([name]) => name !== "style");
      if (match) token.attrJoin("class", `align-${match[1]}`);
    }
  }
});

const SAFE_LINK = /^(https?:|mailto:|tel:|#|\/(?!\/))/i;

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") || "";
    if (!SAFE_LINK.test(href)) {
      node.removeAttribute("href");
    } else if (/^https?:/i.test(href)) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  }
  // Images from elsewhere would tell a third party who reads the basis (and
  // break the page's img-src 'self'): only the server's own images load.
  if (node.tagName === "IMG" && !/^\/(?!\/)/.test(node.getAttribute("src") || "")) {
    node.removeAttribute("src");
  }
});

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "img",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ],
  ALLOWED_ATTR: ["href", "title", "alt", "src", "class", "target", "rel", "start"],
  FORBID_ATTR: ["style"],
};

/**
 * The basis as a sanitised DocumentFragment. Its headings are shifted so
 * that the highest one becomes `h{topLevel}`, below the page's own headings.
 */
export function renderMarkdown(source, topLevel = 3) {
  const fragment = DOMPurify.sanitize(md.render(source || ""), PURIFY);
  for (const img of fragment.querySelectorAll("img:not([src])")) {
    img.replaceWith(document.createTextNode(img.getAttribute("alt") || ""));
  }
  const headings = [...fragment.querySelectorAll("h1, h2, h3, h4, h5, h6")];
  const highest = Math.min(...headings.map((h) => Number(h.tagName[1])));
  for (const heading of headings) {
    const level = Math.min(6, Number(heading.tagName[1]) - highest + topLevel);
    const replacement = document.createElement(`h${level}`);
    replacement.append(...heading.childNodes);
    heading.replaceWith(replacement);
  }
  return fragment;
}
