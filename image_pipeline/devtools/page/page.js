// The local page: one card per upload showing what its document says, as it changes.
// Two modes: live (served by `dev`: every upload the relay delivers, whoever made it, newest first; pick a route and
// drop or choose images to make more) and snapshot (the demo's index.html: one card drawn from an embedded document,
// its images from files beside the page).
// Needs hashes.js (thumbHashToDataURL, blurHashToDataURL) loaded first.
"use strict";

(function () {
  const TERMINAL = new Set(["complete", "failed"]);
  const POLL_MS = 300;
  const POLL_LIMIT_MS = 10 * 60 * 1000;
  const FEED_POLL_MS = 500;
  const MAX_CARDS = 50; // older cards leave the page (their images with them): a long session stays light
  const MAX_SKIPPED = 100;
  const DELIVERY_ENDED = new Set(["delivered", "gave-up"]);
  const FORMAT_ORDER = ["avif", "webp", "png", "jpeg"]; // smallest to most widely supported
  const SIZES = "(max-width: 760px) 100vw, 560px"; // the result column's width, for choosing from srcset

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child);
    return node;
  }

  function size(bytes) {
    if (typeof bytes !== "number") return "? bytes";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
  }

  function fieldValue(document, path) {
    return path.split(".").reduce((value, part) => (value && typeof value === "object" ? value[part] : undefined), document);
  }

  function rank(format) {
    const index = FORMAT_ORDER.indexOf(format);
    return index < 0 ? FORMAT_ORDER.length : index;
  }

  // Whether generation `a` is newer than `b` (digit strings beyond what JavaScript numbers hold exactly).
  function newer(a, b) {
    const digits = /^[0-9]+$/;
    return digits.test(String(a)) && digits.test(String(b)) && BigInt(a) > BigInt(b);
  }

  function fileName(url) {
    const path = decodeURIComponent(String(url).split("?")[0]);
    return path.slice(path.lastIndexOf("/") + 1);
  }

  // The variants by area, largest first; the largest is what the app shows.
  function variantsBySize(manifest) {
    return Object.entries(manifest.variants || {}).sort(([, a], [, b]) => b.width * b.height - a.width * a.height);
  }

  function primaryFormat(variant) {
    const formats = variant.formats || {};
    return Object.keys(formats).find((name) => formats[name].url === variant.url) || Object.keys(formats)[0];
  }

  // The image's shape, as wide as the column but no taller than most of the window (a portrait photo stays whole)
  // and never wider than the image itself.
  function frameShape(width, height) {
    return `aspect-ratio: ${width} / ${height}; width: min(100%, ${width}px, calc(70vh * ${width} / ${height}))`;
  }

  function placeholderImage(placeholder, width, height) {
    if (placeholder.thumbhash) return { kind: "thumbhash", url: thumbHashToDataURL(placeholder.thumbhash) };
    if (placeholder.blurhash) return { kind: "blurhash", url: blurHashToDataURL(placeholder.blurhash, width, height) };
    return null;
  }

  // The image as an app shows it: the placeholder painted in the frame first, the <picture> fading in over it.
  function resultFrame(manifest) {
    const [[name, largest]] = variantsBySize(manifest);
    const frame = el("div", { class: "frame", style: frameShape(largest.width, largest.height) });
    const placeholder = manifest.placeholder || {};
    if (placeholder.dominantColor) frame.style.backgroundColor = placeholder.dominantColor;
    const drawn = placeholderImage(placeholder, largest.width, largest.height);
    if (drawn) {
      frame.style.backgroundImage = `url("${drawn.url}")`;
      frame.dataset.placeholder = drawn.kind;
    }
    frame.dataset.placeholderAt = String(performance.now());
    // Newer formats as <source>s, smallest first; the most widely supported one in the <img> as the fallback.
    const srcset = manifest.srcset || {};
    const formats = Object.keys(srcset).sort((a, b) => rank(a) - rank(b));
    const fallback = formats.pop() || primaryFormat(largest);
    const picture = el("picture");
    for (const format of formats) {
      const type = (largest.formats[format] || {}).contentType || `image/${format}`;
      picture.append(el("source", { type, srcset: srcset[format], sizes: SIZES }));
    }
    const image = el("img", {
      src: (largest.formats[fallback] || largest).url, srcset: srcset[fallback], sizes: SIZES,
      width: largest.width, height: largest.height, alt: `${name} variant`, decoding: "async",
    });
    const shown = el("figcaption", { text: "loading …" });
    image.addEventListener("load", () => {
      // Whether the placeholder was already painted when the image arrived: what a person saw first.
      image.dataset.placeholderBefore = frame.style.backgroundImage.startsWith("url(") ? "yes" : "no";
      image.dataset.loadedAt = String(performance.now());
      image.classList.add("loaded");
      // naturalWidth of a srcset image is scaled by the chosen candidate's density: the file's own size is read
      // from a plain copy of it (already in the cache).
      const file = new Image();
      file.src = image.currentSrc;
      file.decode().then(() => {
        image.dataset.pixels = `${file.naturalWidth}x${file.naturalHeight}`;
        shown.replaceChildren(el("b", { text: "Shown: " }), `${fileName(image.currentSrc)} · `,
          `${file.naturalWidth}×${file.naturalHeight} pixels, chosen by the browser from srcset for this column`);
      });
    });
    picture.append(image);
    frame.append(picture);
    const settled = new Promise((resolve) => {
      image.addEventListener("load", resolve);
      image.addEventListener("error", resolve);
    });
    return { nodes: [frame, shown], settled };
  }

  function originalFigure(info, source) {
    const facts = source && source.width
      ? `${source.format} ${source.width}×${source.height} · ${size(source.bytes)} · ${source.contentType}`
      : source ? `${size(source.bytes)} · ${source.contentType}` : "";
    const image = info.originalUrl ? el("img", { src: info.originalUrl, alt: "the original" }) : null;
    image?.addEventListener("error", () => image.replaceWith(el("div", { class: "unviewable", text: "not viewable in this browser" })));
    return el("figure", { class: "original" }, image,
      el("figcaption", {}, el("b", { text: "Original " }), info.originalName || "", el("br"), facts));
  }

  function failureBox(error) {
    return el("div", { class: "failure" },
      el("code", { class: "error-code", text: error.code || "error" }), " ",
      el("span", { class: "error-message", text: error.message || String(error) }));
  }

  function placeholdersSection(placeholder, width, height) {
    const ratio = `aspect-ratio: ${width} / ${height}`;
    const tiles = [el("figure", {},
      el("div", { class: "tile swatch", style: `${ratio}; background-color: ${placeholder.dominantColor}` }),
      el("figcaption", {}, "dominant colour ", el("code", { text: placeholder.dominantColor })))];
    if (placeholder.thumbhash) tiles.push(el("figure", { title: placeholder.thumbhash },
      el("div", { class: "tile", style: `${ratio}; background-image: url("${thumbHashToDataURL(placeholder.thumbhash)}")` }),
      el("figcaption", { text: `ThumbHash · ${atob(placeholder.thumbhash).length} bytes` })));
    if (placeholder.blurhash) tiles.push(el("figure", { title: placeholder.blurhash },
      el("div", { class: "tile", style: `${ratio}; background-image: url("${blurHashToDataURL(placeholder.blurhash, width, height)}")` }),
      el("figcaption", { text: `BlurHash · ${placeholder.blurhash.length} characters` })));
    return [el("h3", { text: "Placeholders" }), el("div", { class: "placeholders" }, tiles)];
  }

  // The variants' images load once the main image has: one already in the cache would be preferred over the
  // srcset candidate the browser would otherwise choose.
  function variantsSection(manifest, settled) {
    const figures = variantsBySize(manifest).reverse().map(([name, variant]) => el("figure", { class: "variant" },
      variantImage(name, variant, settled),
      el("figcaption", {}, el("b", { text: name }), ` ${variant.width}×${variant.height}`,
        variant.sameAs ? ` · same as ${variant.sameAs}` : "",
        el("ul", { class: "formats" }, Object.entries(variant.formats || { [primaryFormat(variant)]: variant })
          .map(([format, stored]) => el("li", {},
            el("a", { href: stored.url, target: "_blank", text: format }),
            el("span", { text: `${size(stored.bytes)}${stored.sameAs ? ` (= ${stored.sameAs})` : ""}` })))))));
    return [el("h3", { text: "Variants" }), el("div", { class: "variants" }, figures)];
  }

  function variantImage(name, variant, settled) {
    const image = el("img", { width: variant.width, height: variant.height, alt: name });
    settled.then(() => { image.src = variant.url; });
    return image;
  }

  function cutoutSection(manifest) {
    if (!("cutout" in manifest)) return [];
    const cutout = manifest.cutout;
    let text = manifest.status === "failed" ? "not made (the upload failed)" : "pending";
    if (cutout && cutout.applied) text = `applied · ${cutout.model} · subject covers ${Math.round(cutout.coverage * 100)}%`;
    else if (cutout) text = `not applied: ${cutout.reason}`;
    return [el("h3", { text: "Background removal" }), el("p", { class: "cutout", text })];
  }

  // How the relay's delivery of an upload's event stands, in words.
  function deliveryText(delivery) {
    const tries = `${delivery.attempts} attempt${delivery.attempts === 1 ? "" : "s"}`;
    const answer = delivery.status === null ? "no answer" : String(delivery.status);
    if (delivery.state === "delivering") return "relay: delivering the event …";
    if (delivery.state === "retrying") return `relay: the function answered ${answer}; redelivering in ${delivery.retryInS} s (${tries} so far)`;
    if (delivery.state === "delivered") return `relay: the function answered ${answer} in ${delivery.seconds.toFixed(2)} s (${tries})`;
    return `relay: gave up after ${tries} (last answer: ${answer})`;
  }

  class Card {
    // info.ageS: how long ago the relay received the upload's event (the timeline counts from then); info.late: it
    // was over before the page opened, so the page cannot tell when each status came (the timeline says none).
    constructor(container, info) {
      this.info = info;
      this.started = info.late ? null : performance.now() - (info.ageS || 0) * 1000;
      this.seen = [];
      this.shownKey = null;
      this.delivery = null;
      this.status = el("span", { class: "status" });
      this.timeline = el("span", { class: "timeline" });
      this.where = el("span", { class: "where" });
      this.relay = el("span", { class: "relay" });
      this.body = el("div", { class: "body" });
      this.root = el("article", { class: "card" },
        el("div", { class: "card-head" }, this.status, this.where, this.timeline, this.relay), this.body);
      container.prepend(this.root);
      this.describe();
      this.setStatus(info.status || "uploading", 0);
      this.drawPending(null);
    }

    describe() {
      const info = this.info;
      this.where.replaceChildren(`route `, el("b", { text: info.route }), ` · ${info.object || ""}`,
        info.document ? ` → ${info.document} · ${info.field}` : "");
    }

    setStatus(status, at = (performance.now() - this.started) / 1000) {
      if (this.seen.length && this.seen[this.seen.length - 1].status === status) return;
      this.seen.push({ status, at: this.started === null ? null : at });
      this.status.textContent = status;
      this.status.dataset.status = status;
      this.timeline.textContent = this.seen
        .map((step) => (step.at === null ? step.status : `${step.status} ${step.at.toFixed(1)} s`)).join(" → ");
    }

    relayed(delivery) {
      this.delivery = delivery;
      this.relay.textContent = deliveryText(delivery);
      this.relay.dataset.state = delivery.state;
    }

    get deliveryEnded() {
      return this.delivery !== null && DELIVERY_ENDED.has(this.delivery.state);
    }

    uploaded(answer) {
      Object.assign(this.info, answer);
      this.describe();
      this.setStatus("uploaded");
    }

    failPage(message) {
      this.setStatus("failed");
      this.body.replaceChildren(originalFigure(this.info, null), failureBox({ code: "page", message }));
    }

    // The delivery ended and the document holds nothing for this upload: the function's log says why.
    noResult() {
      this.setStatus("no result");
      this.body.replaceChildren(el("div", { class: "pair" }, originalFigure(this.info, null),
        el("figure", { class: "result" }, el("p", { class: "note",
          text: `${this.info.document} holds no result for this upload at ${this.info.field}; the function's log lines (dev's stderr) say why.` }))));
    }

    // A later upload's result took this one's place in the document.
    replaced(generation) {
      this.setStatus("replaced");
      this.body.replaceChildren(el("div", { class: "pair" }, originalFigure(this.info, null),
        el("figure", { class: "result" }, el("p", { class: "note",
          text: `A later upload (generation ${generation}) replaced this result in ${this.info.document} · ${this.info.field}.` }))));
    }

    drawPending(source) {
      // Until the function has read the upload's size: a 4:3 frame as wide as the column.
      const shape = source && source.width ? frameShape(source.width, source.height) : "aspect-ratio: 4 / 3; width: 100%";
      this.body.replaceChildren(el("div", { class: "pair" }, originalFigure(this.info, source),
        el("figure", { class: "result" }, el("div", { class: "frame working", style: shape }),
          el("figcaption", { text: "waiting for the function …" }))));
    }

    // Show the document; true once its manifest for this upload has settled (or a later upload's replaced it).
    show(document) {
      const manifest = fieldValue(document || {}, this.info.field);
      const source = manifest && manifest.source;
      if (source && this.info.generation && newer(source.generation, this.info.generation)) {
        this.replaced(source.generation);
        return true;
      }
      if (!manifest || (this.info.generation && String((source || {}).generation) !== String(this.info.generation))) {
        return false; // the document still holds nothing, or an earlier upload's result
      }
      this.setStatus(manifest.status);
      const key = JSON.stringify({ ...manifest, updatedAt: null });
      if (key !== this.shownKey) {
        this.shownKey = key;
        this.draw(manifest, document);
      }
      return TERMINAL.has(manifest.status);
    }

    draw(manifest, document) {
      if (manifest.status === "failed") {
        this.body.replaceChildren(el("div", { class: "pair" }, originalFigure(this.info, manifest.source),
          el("figure", { class: "result" }, failureBox(manifest.error || {}))), ...cutoutSection(manifest));
      } else if (manifest.status !== "complete" || !variantsBySize(manifest).length) {
        this.drawPending(manifest.source);
        this.body.append(...cutoutSection(manifest));
      } else {
        const [[, largest]] = variantsBySize(manifest);
        const result = resultFrame(manifest);
        this.body.replaceChildren(
          el("div", { class: "pair" }, originalFigure(this.info, manifest.source), el("figure", { class: "result" }, result.nodes)),
          ...cutoutSection(manifest),
          ...(manifest.placeholder ? placeholdersSection(manifest.placeholder, largest.width, largest.height) : []),
          ...variantsSection(manifest, result.settled));
      }
      this.body.append(el("details", {}, el("summary", { text: `The document ${this.info.document || ""}` }),
        el("pre", { text: JSON.stringify(document, null, 2) })));
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function getJSON(url, options) {
    const response = await fetch(url, options);
    const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
    if (!response.ok) throw new Error(body.error || `${response.status}`);
    return body;
  }

  // Follow the card's document until its result settles, the relay's delivery ends without one, or the card leaves.
  async function watch(card) {
    const deadline = performance.now() + POLL_LIMIT_MS;
    while (card.root.isConnected && performance.now() < deadline) {
      // Read before the document: the function records the result before it answers, so a delivery seen ended here
      // has its result in the read that follows.
      const ended = card.deliveryEnded;
      const answer = await getJSON(`/api/document?path=${encodeURIComponent(card.info.document)}`);
      if (card.show(answer.data)) return;
      if (ended) return card.noResult();
      await sleep(POLL_MS);
    }
    if (card.root.isConnected) card.failPage("no result after 10 minutes: is the function running?");
  }

  // The cards on the page, by upload (object and generation): the relay's report on an upload the page made updates
  // that upload's card rather than adding another.
  class Uploads {
    constructor(cards) {
      this.cards = cards;
      this.byKey = new Map();
    }

    add(info) {
      const card = new Card(this.cards, info);
      for (const extra of [...this.cards.children].slice(MAX_CARDS)) {
        extra.remove();
        this.byKey.delete(extra.dataset.key);
      }
      return card;
    }

    // The card for `key` is `card` from now on; a card the relay's report made for it first goes.
    claim(card, key) {
      const earlier = this.byKey.get(key);
      if (earlier && earlier !== card) {
        if (earlier.delivery) card.relayed(earlier.delivery);
        earlier.root.remove();
      }
      card.root.dataset.key = key;
      this.byKey.set(key, card);
    }

    async drop(route, file) {
      const card = this.add({
        route: route.name, field: route.field, object: `${route.folder}/${file.name}`,
        originalUrl: URL.createObjectURL(file), originalName: file.name,
      });
      try {
        const query = `route=${encodeURIComponent(route.name)}&name=${encodeURIComponent(file.name)}`;
        const headers = { "Content-Type": file.type || "application/octet-stream" };
        card.uploaded(await getJSON(`/api/upload?${query}`, { method: "POST", headers, body: file }));
        this.claim(card, `${card.info.object}#${card.info.generation}`);
        await watch(card);
      } catch (error) {
        card.failPage(error.message);
      }
    }

    // One event the relay reported (new, or its delivery moved on); `before` it was in the feed when the page opened.
    reported(upload, before) {
      const key = `${upload.object}#${upload.generation}`;
      const known = this.byKey.get(key);
      if (known) return known.relayed(upload.delivery);
      const card = this.add({
        route: upload.route, field: upload.field, object: upload.object, document: upload.document,
        generation: upload.generation, originalUrl: upload.originalUrl, originalName: fileName(upload.object),
        status: "received", ageS: upload.ageS, late: before && DELIVERY_ENDED.has(upload.delivery.state),
      });
      card.relayed(upload.delivery);
      this.claim(card, key);
      watch(card).catch((error) => card.failPage(error.message));
    }
  }

  // Events no route takes (the variants the function writes among them): one line each, newest first.
  class Skipped {
    constructor(details) {
      this.details = details;
      this.list = details.querySelector("ul");
      this.summary = details.querySelector("summary");
      this.ids = new Set();
      this.count = 0;
    }

    reported(upload) {
      if (this.ids.has(upload.id)) return; // its delivery moved on: nothing here shows it
      this.ids.add(upload.id);
      this.count += 1;
      this.list.prepend(el("li", { "data-id": upload.id }, el("code", { text: upload.object }), ` · ${upload.skipped}`));
      for (const extra of [...this.list.children].slice(MAX_SKIPPED)) {
        extra.remove();
        this.ids.delete(extra.dataset.id);
      }
      this.summary.textContent = `${this.count} event${this.count === 1 ? "" : "s"} no route takes (the variants the function writes among them)`;
      this.details.hidden = false;
    }
  }

  // Every event the relay reports, as it comes: polled, each answer holding what changed since the previous one.
  async function follow(uploads, skipped) {
    let change = 0;
    let before = true; // the first answer holds what the feed had when the page opened
    for (;;) {
      try {
        const answer = await getJSON(`/api/uploads?since=${change}`);
        // A smaller number than ours: the page server started again (a new `dev`); take its feed from the start.
        change = answer.change < change ? 0 : answer.change;
        for (const upload of answer.uploads) (upload.skipped ? skipped : uploads).reported(upload, before);
        before = false;
      } catch (error) {
        // `dev` stopped or is restarting: keep asking, the page shows what it has.
      }
      await sleep(FEED_POLL_MS);
    }
  }

  async function live(picker, cards) {
    const uploads = new Uploads(cards);
    const select = document.getElementById("route");
    const info = document.getElementById("route-info");
    const input = document.getElementById("file");
    const drop = document.getElementById("drop");
    let config;
    try {
      config = await getJSON("/api/routes");
    } catch (error) {
      document.getElementById("page-error").textContent = `The page server did not answer: ${error.message}`;
      return;
    }
    for (const route of config.routes) select.append(el("option", { value: route.name, text: route.name }));
    const chosen = () => config.routes.find((route) => route.name === select.value);
    const explain = () => {
      const route = chosen();
      const seed = Object.entries(route.require).map(([path, value]) => `${path} = ${value}`).join(", ");
      info.replaceChildren(`uploads to gs://${config.bucket}/${route.folder}/<file> · document ${route.document} · field ${route.field} · `,
        route.missing === "create" ? "the function creates the document"
          : `the page creates the document first${seed ? ` (${seed})` : ""}`,
        ` · ${route.formats.join(", ")} · variants ${Object.keys(route.variants).join(", ")}`);
    };
    select.addEventListener("change", explain);
    explain();
    const take = (files) => {
      for (const file of files) uploads.drop(chosen(), file);
    };
    drop.addEventListener("click", () => input.click());
    input.addEventListener("change", () => { take([...input.files]); input.value = ""; });
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      take([...event.dataTransfer.files].filter((file) => file.size > 0));
    });
    picker.hidden = false;
    if (config.feed) {
      document.getElementById("feed-info").hidden = false;
      follow(uploads, new Skipped(document.getElementById("skipped")));
    }
  }

  // The demo's page: one upload's card, drawn from the document embedded in the page.
  function snapshot(data, cards) {
    const card = new Card(cards, { ...data.card, status: "uploaded" });
    card.show(data.fields);
    const manifest = fieldValue(data.fields, data.card.field) || {};
    card.timeline.textContent = manifest.updatedAt ? `updated ${manifest.updatedAt}` : "";
  }

  window.addEventListener("DOMContentLoaded", () => {
    const cards = document.getElementById("cards");
    const embedded = document.getElementById("snapshot");
    if (embedded) snapshot(JSON.parse(embedded.textContent), cards);
    else live(document.getElementById("picker"), cards);
  });
})();
