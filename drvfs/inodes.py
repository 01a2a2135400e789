"""The inode table: FUSE inode numbers, lookup counts, and each inode's fid and path.

An inode's number is the server's qid path, except that the root's qid path and
FUSE's root number 1 trade places. Each `Inode` keeps a fid on the connection it
was reached on (or none), its lookup count (the kernel's references), and its
parent and name, so that after a reconnection it can be walked to again from the
root. A node the kernel has forgotten is kept while a child still refers to it
(its path is needed), and is revived if the kernel looks it up again.

A node needs no fid: one listed with its attributes (READDIRPLUS) has none
until the kernel asks for something that needs one, and it is then walked to
from its nearest ancestor that has one, or from one of its open files
(`files`), whose fids reach it whatever became of its name (`drvfs.resolver`).

The table also records the names the kernel was given in each directory, by
case-folded name (`names`): in a case-insensitive directory the kernel's
dentry cache, which is case-sensitive, may hold several case variants of one
entry, and they must all be dropped when the entry changes
(`drvfs.coherence.CaseVariants`); the records also tell which node a name
the kernel renames is.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import pyfuse3

from ninep.client import Attr, Fid
from ninep.convert import fold

if TYPE_CHECKING:
    from .openfiles import OpenFile

ROOT = pyfuse3.ROOT_INODE


class Inode:
    """One file the kernel knows."""

    __slots__ = ("__weakref__", "changes", "fid", "files", "fresh", "given", "ino", "lookups",
                 "name", "parent", "stamp")  # fmt: skip

    def __init__(self, ino: int, parent: Inode | None, name: str, fid: Fid | None) -> None:
        self.ino = ino
        self.parent = parent  # None for the root
        self.name = name  # the name in `parent` it was last reached by
        self.fid = fid  # not opened: used for walks, getattr, setattr, directory operations
        self.files: list[OpenFile] = []  # open now (`OpenFileTable`): they reach it by no name
        self.lookups = 0
        self.stamp: tuple[int, int, int] | None = None  # (mtime s, mtime ns, size) at last open
        self.given: tuple[int, int, int] | None = None  # the same, as last given to the kernel
        self.changes = 0  # changes of its names seen (a directory's: `drvfs.directories`)
        self.fresh: tuple[Attr, float] | None = None  # its attributes after this mount's change

    def __repr__(self) -> str:
        return f"<Inode {self.ino} {'/'.join(self.path())!r}>"

    def path(self) -> list[str]:
        """The names leading from the root to this file (as last known)."""
        names: list[str] = []
        node: Inode | None = self
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        names.reverse()
        return names


class InodeTable:
    """Nodes by inode number, with the lookup counting FUSE requires."""

    def __init__(self, root_qid_path: int) -> None:
        self.root_qid_path = root_qid_path
        self.root = Inode(ROOT, None, "", None)  # its fid is the attachment's root
        self._nodes: dict[int, Inode] = {ROOT: self.root}
        self._limbo: weakref.WeakValueDictionary[int, Inode] = weakref.WeakValueDictionary()
        # directory ino -> folded name -> {name given to the kernel: ino, 0 for "no such name"}
        self._names: dict[int, dict[str, dict[str, int]]] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def ino(self, qid_path: int) -> int:
        """The inode number of a qid path."""
        if qid_path == self.root_qid_path:
            return ROOT
        if qid_path == ROOT:
            return self.root_qid_path
        return qid_path

    def get(self, ino: int) -> Inode | None:
        """The node of inode `ino`, if the kernel knows it."""
        return self._nodes.get(ino)

    def find(self, ino: int) -> Inode | None:
        """The node of inode `ino`, even a forgotten one still kept as a parent."""
        return self._nodes.get(ino) or self._limbo.get(ino)

    def add(
        self, parent: Inode, name: str, qid_path: int, fid: Fid | None
    ) -> tuple[Inode, Fid | None]:
        """Count one lookup of `name` in `parent`, found to be `qid_path` through `fid`.

        Returns the node and the fid left over (to clunk) if the node already has a
        fid on the same connection.
        """
        ino = self.ino(qid_path)
        node = self._nodes.get(ino)
        if node is None:
            node = self._limbo.pop(ino, None)
            if node is None:
                node = Inode(ino, parent, name, None)
            self._nodes[ino] = node
        if node is not self.root and name not in (".", ".."):
            node.parent, node.name = parent, name
            self.named(parent.ino, name, ino)
        node.lookups += 1
        spare: Fid | None = fid
        held = node.fid
        if fid is not None and (held is None or held.fid is None or held.client is not fid.client):
            node.fid, spare = fid, None  # the node had no fid on this connection
        return node, spare

    def forget(self, ino: int, count: int) -> Fid | None:
        """Drop `count` lookups; at zero the node leaves the table and its fid is returned."""
        node = self._nodes.get(ino)
        if node is None or node is self.root:
            return None
        node.lookups -= count
        if node.lookups > 0:
            return None
        del self._nodes[ino]
        self._limbo[ino] = node
        if node.parent is not None:
            self._unname(node.parent.ino, node.name, ino)
        fid, node.fid = node.fid, None
        return fid

    def moved(self, node: Inode, parent: Inode, name: str) -> None:
        """Record that `node` is now `name` in `parent`."""
        if node is not self.root:
            if node.parent is not None:
                self._unname(node.parent.ino, node.name, node.ino)
            node.parent, node.name = parent, name
            self.named(parent.ino, name, node.ino)

    # ---- the names the kernel was given ----

    def named(self, parent: int, name: str, ino: int) -> None:
        """Record that the kernel was told `name` in directory `parent` is inode `ino`
        (0: that there is no such name)."""
        self._names.setdefault(parent, {}).setdefault(fold(name), {})[name] = ino

    def ino_named(self, parent: int, name: str) -> int | None:
        """The inode the kernel was last told `name` in `parent` is (None: not told, or 0)."""
        return self._names.get(parent, {}).get(fold(name), {}).get(name) or None

    def take_variants(self, parent: int, name: str) -> list[tuple[str, int]]:
        """The names the kernel was given in `parent` that fold like `name` (`name` itself
        apart), with their inodes; all of them, `name` too, are forgotten."""
        folded = self._names.get(parent)
        names = folded.pop(fold(name), {}) if folded is not None else {}
        if folded is not None and not folded:
            del self._names[parent]
        return [(other, ino) for other, ino in names.items() if other != name]

    def variants(self, parent: int, name: str) -> list[str]:
        """The names the kernel was given in `parent` that fold like `name` (`name` apart);
        the records stay."""
        names = self._names.get(parent, {}).get(fold(name), {})
        return [other for other in names if other != name]

    def names_in(self, parent: int) -> list[tuple[str, int]]:
        """Every name the kernel was given in directory `parent`, with its inode (0: none)."""
        folded = self._names.get(parent, {})
        return [(n, ino) for names in folded.values() for n, ino in names.items()]

    def all_names(self) -> list[tuple[int, str, int]]:
        """Every (directory, name, inode) the kernel was given."""
        return [(parent, n, ino) for parent in self._names for n, ino in self.names_in(parent)]

    def inos(self) -> list[int]:
        """Every inode the kernel knows."""
        return list(self._nodes)

    def _unname(self, parent: int, name: str, ino: int) -> None:
        folded = self._names.get(parent)
        names = folded.get(fold(name)) if folded is not None else None
        if folded is not None and names is not None and names.get(name) == ino:
            del names[name]
            if not names:
                del folded[fold(name)]
                if not folded:
                    del self._names[parent]
