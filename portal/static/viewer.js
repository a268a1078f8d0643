// The image viewer (_viewer.html): one large page with zoom, fit, rotate, page and image
// navigation, keyboard shortcuts and a thumbnail strip.  The images are the
// [data-viewer-item] cards inside the element named by data-source; the strip follows
// that list as cards are uploaded, removed or reordered.
(function () {
  "use strict";

  var STEP = 1.25, MIN_SCALE = 0.05, MAX_SCALE = 8, PAD = 16;

  function Viewer(root) {
    this.root = root;
    this.source = document.querySelector(root.getAttribute("data-source") || "#image-list");
    this.stage = root.querySelector(".viewer-stage");
    this.canvas = root.querySelector(".viewer-canvas");
    this.img = root.querySelector(".viewer-img");
    this.strip = root.querySelector(".viewer-strip");
    this.pos = root.querySelector(".viewer-pos");
    this.zoomLabel = root.querySelector(".viewer-zoom");
    this.caption = root.querySelector(".viewer-caption");
    this.download = root.querySelector(".viewer-download");
    this.items = [];
    this.index = -1;
    this.page = 1;
    this.scale = null; // null: fit the stage
    this.rotation = 0;
    this.bind();
    this.collect();
    if (this.items.length) this.show(0, 1);
    else this.render();
  }

  Viewer.prototype.collect = function () {
    var nodes = this.source ? this.source.querySelectorAll("[data-viewer-item]") : [];
    this.items = Array.prototype.map.call(nodes, function (el) {
      return {
        el: el,
        id: el.getAttribute("data-image-id"),
        pages: Math.max(1, parseInt(el.getAttribute("data-pages"), 10) || 1),
        thumb: el.getAttribute("data-thumb"),
        base: el.getAttribute("data-page-base"),
        original: el.getAttribute("data-original"),
        name: el.getAttribute("data-name") || ""
      };
    });
    this.buildStrip();
  };

  Viewer.prototype.buildStrip = function () {
    var strip = this.strip;
    strip.textContent = "";
    this.items.forEach(function (item, i) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "viewer-thumb";
      b.setAttribute("role", "listitem");
      b.setAttribute("data-index", String(i));
      b.title = item.name;
      var im = document.createElement("img");
      im.src = item.thumb;
      im.alt = item.name;
      var n = document.createElement("span");
      n.textContent = String(i + 1);
      b.appendChild(im);
      b.appendChild(n);
      strip.appendChild(b);
    });
  };

  // The card list changed (upload, remove, reorder): keep showing the same image if it is still there.
  Viewer.prototype.refresh = function () {
    var current = this.items[this.index];
    this.collect();
    var at = -1;
    for (var i = 0; current && i < this.items.length; i++) {
      if (this.items[i].id === current.id) at = i;
    }
    if (at >= 0) { this.index = at; this.render(); }
    else if (this.items.length) this.show(Math.min(Math.max(this.index, 0), this.items.length - 1), 1);
    else { this.index = -1; this.render(); }
  };

  Viewer.prototype.show = function (index, page) {
    if (index < 0 || index >= this.items.length) return;
    if (index !== this.index) this.rotation = 0; // a new file: its own orientation
    this.index = index;
    this.page = Math.min(Math.max(page || 1, 1), this.items[index].pages);
    var item = this.items[index];
    var src = item.base ? item.base + this.page : item.thumb;
    if (this.img.getAttribute("src") !== src) {
      this.root.classList.add("loading");
      this.img.src = src;
      this.img.alt = item.name + " 第 " + this.page + " 页";
      this.preload(index, this.page + 1);
    }
    this.render();
  };

  Viewer.prototype.preload = function (index, page) {
    var item = this.items[index];
    if (item && item.base && page <= item.pages) new Image().src = item.base + page;
  };

  // Texts, strip highlight and buttons for the current position.
  Viewer.prototype.render = function () {
    var item = this.items[this.index];
    this.root.classList.toggle("is-empty", !item);
    var self = this;
    Array.prototype.forEach.call(this.strip.children, function (b, i) {
      b.setAttribute("aria-current", i === self.index ? "true" : "false");
    });
    this.items.forEach(function (it, i) { it.el.classList.toggle("current", i === self.index); });
    if (!item) {
      this.pos.textContent = "";
      this.caption.textContent = "";
      this.zoomLabel.textContent = "";
      if (this.download) this.download.hidden = true;
      return;
    }
    this.pos.textContent = (this.index + 1) + "/" + this.items.length + " 张 · " + this.page + "/" + item.pages + " 页";
    this.caption.textContent = item.name;
    this.caption.title = item.name;
    if (this.download) {
      this.download.hidden = !item.original;
      if (item.original) this.download.href = item.original;
    }
    var current = this.strip.children[this.index];
    if (current && current.scrollIntoView) current.scrollIntoView({ block: "nearest", inline: "nearest" });
    this.layout();
  };

  Viewer.prototype.fitScale = function (w, h) {
    var sw = this.stage.clientWidth - PAD, sh = this.stage.clientHeight - PAD;
    if (sw <= 0 || sh <= 0) return 1;
    return Math.min(sw / w, sh / h);
  };

  // Size the canvas to the rotated page and centre the image in it.
  Viewer.prototype.layout = function () {
    this.img.style.transform = "translate(-50%, -50%) rotate(" + this.rotation + "deg)";
    var w = this.img.naturalWidth, h = this.img.naturalHeight;
    if (!w || !h) return; // still loading: the load event lays it out
    var turned = this.rotation % 180 !== 0;
    var rw = turned ? h : w, rh = turned ? w : h;
    var scale = this.scale === null ? this.fitScale(rw, rh) : this.scale;
    this.canvas.style.width = Math.round(rw * scale) + "px";
    this.canvas.style.height = Math.round(rh * scale) + "px";
    this.img.style.width = Math.round(w * scale) + "px";
    this.img.style.height = Math.round(h * scale) + "px";
    this.zoomLabel.textContent = Math.round(scale * 100) + "%" + (this.scale === null ? "（适应）" : "");
  };

  Viewer.prototype.currentScale = function () {
    if (this.scale !== null) return this.scale;
    var w = this.img.naturalWidth || 1, h = this.img.naturalHeight || 1;
    return this.rotation % 180 ? this.fitScale(h, w) : this.fitScale(w, h);
  };

  // Zoom to ``scale`` keeping the point at (x, y) of the stage's visible box (default: its centre) in place.
  Viewer.prototype.zoomTo = function (scale, x, y) {
    if (!this.img.naturalWidth) return;
    var st = this.stage;
    if (x === undefined) { x = st.clientWidth / 2; y = st.clientHeight / 2; }
    var cw = this.canvas.offsetWidth || 1, ch = this.canvas.offsetHeight || 1;
    var fx = (st.scrollLeft + x - this.canvas.offsetLeft) / cw;
    var fy = (st.scrollTop + y - this.canvas.offsetTop) / ch;
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale));
    this.layout();
    st.scrollLeft = this.canvas.offsetLeft + fx * this.canvas.offsetWidth - x;
    st.scrollTop = this.canvas.offsetTop + fy * this.canvas.offsetHeight - y;
  };

  Viewer.prototype.zoom = function (factor) { this.zoomTo(this.currentScale() * factor); };

  // 100 %: the render pixel for pixel, where a page's small print reads (PDF pages with small
  // text are rendered large for this); again: back to fit.
  Viewer.prototype.actual = function (x, y) {
    if (this.scale === 1) this.fit();
    else this.zoomTo(1, x, y);
  };

  Viewer.prototype.fit = function () { this.scale = null; this.layout(); };
  Viewer.prototype.rotate = function () { this.rotation = (this.rotation + 90) % 360; this.layout(); };

  Viewer.prototype.next = function () {
    var item = this.items[this.index];
    if (!item) return;
    if (this.page < item.pages) this.show(this.index, this.page + 1);
    else if (this.index < this.items.length - 1) this.show(this.index + 1, 1);
  };

  Viewer.prototype.prev = function () {
    if (!this.items[this.index]) return;
    if (this.page > 1) this.show(this.index, this.page - 1);
    else if (this.index > 0) this.show(this.index - 1, this.items[this.index - 1].pages);
  };

  Viewer.prototype.act = function (name) {
    switch (name) {
      case "next": this.next(); break;
      case "prev": this.prev(); break;
      case "next-image": this.show(this.index + 1, 1); break;
      case "prev-image": this.show(this.index - 1, 1); break;
      case "zoom-in": this.zoom(STEP); break;
      case "zoom-out": this.zoom(1 / STEP); break;
      case "fit": this.fit(); break;
      case "actual": this.actual(); break;
      case "rotate": this.rotate(); break;
    }
  };

  Viewer.prototype.bind = function () {
    var self = this;
    this.img.addEventListener("load", function () { self.root.classList.remove("loading"); self.layout(); });
    this.img.addEventListener("error", function () {
      self.root.classList.remove("loading");
      self.caption.textContent = "无法显示该页。";
    });
    this.root.addEventListener("click", function (evt) {
      var btn = evt.target.closest("[data-act]");
      if (btn && self.root.contains(btn)) { self.act(btn.getAttribute("data-act")); return; }
      var thumb = evt.target.closest(".viewer-thumb");
      if (thumb) self.show(parseInt(thumb.getAttribute("data-index"), 10), 1);
    });
    // A card's thumbnail opens that image here instead of following its link.
    if (this.source) {
      this.source.addEventListener("click", function (evt) {
        var open = evt.target.closest("[data-viewer-open]");
        if (!open || evt.ctrlKey || evt.metaKey || evt.shiftKey) return;
        evt.preventDefault();
        var id = open.getAttribute("data-viewer-open");
        for (var i = 0; i < self.items.length; i++) {
          if (self.items[i].id === id) self.show(i, 1);
        }
        var box = self.root.getBoundingClientRect();
        if (box.top < 0 || box.bottom > window.innerHeight) self.root.scrollIntoView({ block: "nearest" });
      });
      new MutationObserver(function () { self.refresh(); }).observe(this.source, { childList: true });
    }
    window.addEventListener("resize", function () { if (self.scale === null) self.layout(); });
    this.stage.addEventListener("wheel", function (evt) {
      if (!evt.ctrlKey) return; // plain wheel scrolls; Ctrl+wheel zooms, as in image tools
      evt.preventDefault();
      self.zoom(evt.deltaY < 0 ? STEP : 1 / STEP);
    }, { passive: false });
    // Double-click: 100 % around the clicked point, or back to fit.
    this.stage.addEventListener("dblclick", function (evt) {
      if (!self.img.naturalWidth || !evt.target.closest(".viewer-canvas")) return;
      evt.preventDefault();
      var box = self.stage.getBoundingClientRect();
      self.actual(evt.clientX - box.left - self.stage.clientLeft, evt.clientY - box.top - self.stage.clientTop);
    });
    this.bindPan();
  };

  // Drag the page around when it is larger than the stage.
  Viewer.prototype.bindPan = function () {
    var st = this.stage, start = null;
    st.addEventListener("pointerdown", function (evt) {
      if (evt.button !== 0) return;
      start = { x: evt.clientX, y: evt.clientY, left: st.scrollLeft, top: st.scrollTop };
      st.classList.add("panning");
    });
    st.addEventListener("pointermove", function (evt) {
      if (!start) return;
      st.scrollLeft = start.left - (evt.clientX - start.x);
      st.scrollTop = start.top - (evt.clientY - start.y);
    });
    function end() { start = null; st.classList.remove("panning"); }
    st.addEventListener("pointerup", end);
    st.addEventListener("pointerleave", end);
    st.addEventListener("pointercancel", end);
  };

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  var KEYS = {
    ArrowRight: "next", ArrowLeft: "prev", PageDown: "next-image", PageUp: "prev-image",
    "+": "zoom-in", "=": "zoom-in", "-": "zoom-out", "_": "zoom-out", "0": "fit", "1": "actual", r: "rotate", R: "rotate"
  };

  function init() {
    var viewers = Array.prototype.map.call(document.querySelectorAll("[data-viewer]"), function (el) {
      return (el.portalViewer = new Viewer(el));
    });
    if (!viewers.length) return;
    document.addEventListener("keydown", function (evt) {
      if (evt.ctrlKey || evt.metaKey || evt.altKey || typing(evt.target)) return;
      var name = KEYS[evt.key];
      if (evt.shiftKey && evt.key === "ArrowRight") name = "next-image";
      if (evt.shiftKey && evt.key === "ArrowLeft") name = "prev-image";
      if (!name) return;
      evt.preventDefault();
      viewers[0].act(name);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
