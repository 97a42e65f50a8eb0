// The colour theme, applied before the page is drawn: the visitor's choice (the header's toggle, kept in
// localStorage) or else the system's (prefers-color-scheme, in style.css). Loaded in <head>, no other work.
"use strict";
try {
  const chosen = localStorage.getItem("bastion-theme");
  if (chosen === "dark" || chosen === "light") document.documentElement.dataset.theme = chosen;
} catch (error) { /* storage refused: the system's theme */ }
