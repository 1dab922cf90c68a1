//! ELF header checks for native libraries declared per Android ABI.
//!
//! A library built for the wrong ABI is packaged without complaint by every
//! archiver and fails only on the device, as `UnsatisfiedLinkError` ("is 64-bit
//! instead of 32-bit", "has unexpected e_machine"). [`check_lib`] refuses it at
//! package time, naming the file, the ABI expected and what was found.
//!
//! # What is read (untrusted input: every offset and size is bounds-checked)
//!
//! ```text
//! e_ident[16]  "\x7fELF" class(1 = 32-bit, 2 = 64-bit) data(1 = LSB, 2 = MSB)
//!              version(1) osabi abiversion pad[7]
//! e_type u16   must be ET_DYN (3): a shared object
//! e_machine u16, e_version u32 (must be 1)
//! e_entry, e_phoff, e_shoff      u32 (class 1) | u64 (class 2)
//! e_flags u32, e_ehsize u16 (52 | 64), e_phentsize u16 (32 | 56), e_phnum u16
//! program headers: e_phnum entries of e_phentsize bytes at e_phoff; only
//!              p_type (the first u32) is read, to find PT_INTERP (3)
//! ```
//!
//! # Rules
//!
//! | ABI           | class      | data | e_machine       | extra                          |
//! |---------------|------------|------|-----------------|--------------------------------|
//! | `arm64-v8a`   | ELFCLASS64 | LSB  | EM_AARCH64 183  |                                |
//! | `armeabi-v7a` | ELFCLASS32 | LSB  | EM_ARM 40       | ARM EABI, not hard-float       |
//! | `x86_64`      | ELFCLASS64 | LSB  | EM_X86_64 62    |                                |
//! | `x86`         | ELFCLASS32 | LSB  | EM_386 3        |                                |
//!
//! Besides class and machine: `e_type` must be `ET_DYN`, and an `ET_DYN` file
//! with a `PT_INTERP` program header is a position-independent *executable*
//! (what `gcc` builds by default on Debian), not a library, and is refused too.
//! For `armeabi-v7a`, Android's ABI is soft-float calling convention over EABI
//! 5; a Linux `armhf` build (`EF_ARM_ABI_FLOAT_HARD`) or a pre-EABI one loads
//! but passes floats in the wrong registers, so it is refused.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// `e_machine` of 32-bit x86.
pub const EM_386: u16 = 3;
/// `e_machine` of 32-bit ARM.
pub const EM_ARM: u16 = 40;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of AArch64.
pub const EM_AARCH64: u16 = 183;
/// `e_type` of a relocatable object (what a static archive holds).
pub const ET_REL: u16 = 1;
/// `e_type` of a shared object (or PIE executable).
pub const ET_DYN: u16 = 3;
/// `p_type` of the program interpreter header that executables carry.
pub const PT_INTERP: u32 = 3;
const EF_ARM_EABIMASK: u32 = 0xFF00_0000;
const EF_ARM_EABI_VER5: u32 = 0x0500_0000;
const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;

/// A failure to read a library or a mismatch with its ABI; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// An ABI name that is not one of Android's four.
    #[error("unknown Android ABI {name:?} (expected one of arm64-v8a, armeabi-v7a, x86_64, x86)")]
    UnknownAbi {
        /// The name given.
        name: String,
    },
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The library.
        file: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file does not start with the ELF magic.
    #[error("{file}: not an ELF file (it does not start with \\x7fELF)")]
    NotElf {
        /// The library.
        file: PathBuf,
    },
    /// The file ends inside a structure that must be read.
    #[error("{file}: truncated ELF file: {what} needs bytes up to {needed}, the file has {len}")]
    Truncated {
        /// The library.
        file: PathBuf,
        /// What was being read.
        what: &'static str,
        /// The end offset needed.
        needed: u64,
        /// The file's length.
        len: u64,
    },
    /// A malformed identification or header field.
    #[error("{file}: malformed ELF header: {what}")]
    Malformed {
        /// The library.
        file: PathBuf,
        /// The field and value.
        what: String,
    },
    /// A library built for another class, byte order or machine.
    #[error("{file}: built for {found}, but ABI {expected} needs {needs}")]
    WrongAbi {
        /// The library.
        file: PathBuf,
        /// The ABI it is declared for.
        expected: Abi,
        /// What that ABI needs.
        needs: String,
        /// What the header says.
        found: String,
    },
    /// Not a shared object.
    #[error("{file}: {found}, not a shared object (ET_DYN); ABI {abi} libraries must be built with -shared")]
    NotSharedObject {
        /// The library.
        file: PathBuf,
        /// The ABI it is declared for.
        abi: Abi,
        /// What `e_type` says it is.
        found: String,
    },
    /// An archive member that is not a relocatable object.
    #[error("{file}: {found}, not a relocatable object (ET_REL); a static library for ABI {abi} holds compiled objects")]
    NotObject {
        /// The member (`archive.a(member.o)`).
        file: PathBuf,
        /// The ABI it is declared for.
        abi: Abi,
        /// What `e_type` says it is.
        found: String,
    },
    /// A position-independent executable rather than a library.
    #[error("{file}: a position-independent executable (it has a PT_INTERP program header), not a shared library; build it with -shared")]
    Executable {
        /// The library.
        file: PathBuf,
    },
    /// A 32-bit ARM library whose float ABI or EABI version Android does not use.
    #[error("{file}: ARM e_flags {flags:#010x}: {why}; armeabi-v7a needs EABI 5 with the soft-float calling convention")]
    WrongArmAbi {
        /// The library.
        file: PathBuf,
        /// `e_flags`.
        flags: u32,
        /// What is wrong.
        why: &'static str,
    },
}

type Result<T> = std::result::Result<T, ElfError>;

/// ELF file class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// ELFCLASS32.
    Elf32,
    /// ELFCLASS64.
    Elf64,
}

/// ELF byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// ELFDATA2LSB.
    Little,
    /// ELFDATA2MSB.
    Big,
}

/// An Android ABI, as named in `lib/<abi>/` of an APK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Abi {
    /// `arm64-v8a`: AArch64.
    Arm64V8a,
    /// `armeabi-v7a`: 32-bit ARM, EABI 5, soft-float calls.
    ArmeabiV7a,
    /// `x86_64`.
    X86_64,
    /// `x86`: 32-bit x86.
    X86,
}

impl Abi {
    /// All four, in the order of [`Abi::name`].
    pub const ALL: [Abi; 4] = [Abi::Arm64V8a, Abi::ArmeabiV7a, Abi::X86_64, Abi::X86];

    /// The Android name (`arm64-v8a`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Abi::Arm64V8a => "arm64-v8a",
            Abi::ArmeabiV7a => "armeabi-v7a",
            Abi::X86_64 => "x86_64",
            Abi::X86 => "x86",
        }
    }

    /// The ELF class its libraries have.
    pub fn class(self) -> Class {
        match self {
            Abi::Arm64V8a | Abi::X86_64 => Class::Elf64,
            Abi::ArmeabiV7a | Abi::X86 => Class::Elf32,
        }
    }

    /// The `e_machine` its libraries have.
    pub fn machine(self) -> u16 {
        match self {
            Abi::Arm64V8a => EM_AARCH64,
            Abi::ArmeabiV7a => EM_ARM,
            Abi::X86_64 => EM_X86_64,
            Abi::X86 => EM_386,
        }
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Abi {
    type Err = ElfError;
    fn from_str(s: &str) -> Result<Abi> {
        Abi::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| ElfError::UnknownAbi { name: s.to_string() })
    }
}

/// What the ELF header of a file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfInfo {
    /// 32- or 64-bit.
    pub class: Class,
    /// Byte order.
    pub endian: Endian,
    /// `e_type` (3 = ET_DYN).
    pub e_type: u16,
    /// `e_machine`.
    pub machine: u16,
    /// `e_flags` (processor-specific; the ARM EABI version and float ABI).
    pub flags: u32,
    /// `EI_OSABI`.
    pub os_abi: u8,
    /// Whether a `PT_INTERP` program header is present (an executable).
    pub has_interpreter: bool,
}

fn machine_name(m: u16) -> String {
    match m {
        EM_386 => "x86 (EM_386)".into(),
        EM_ARM => "ARM (EM_ARM)".into(),
        EM_X86_64 => "x86-64 (EM_X86_64)".into(),
        EM_AARCH64 => "AArch64 (EM_AARCH64)".into(),
        8 => "MIPS (EM_MIPS)".into(),
        243 => "RISC-V (EM_RISCV)".into(),
        m => format!("e_machine {m}"),
    }
}

fn describe(class: Class, endian: Endian, machine: u16) -> String {
    let c = if class == Class::Elf64 { "ELFCLASS64" } else { "ELFCLASS32" };
    let e = if endian == Endian::Little { "little-endian" } else { "big-endian" };
    format!("{c} {e} {}", machine_name(machine))
}

fn type_name(t: u16) -> String {
    match t {
        0 => "a file of no type (ET_NONE)".into(),
        1 => "a relocatable object (ET_REL)".into(),
        2 => "an executable (ET_EXEC)".into(),
        3 => "a shared object (ET_DYN)".into(),
        4 => "a core dump (ET_CORE)".into(),
        t => format!("e_type {t:#x}"),
    }
}

/// Reads and validates the ELF header and program header types of `file`.
pub fn inspect(file: &Path) -> Result<ElfInfo> {
    let io_err = |source| ElfError::Io { file: file.to_path_buf(), source };
    let mut f = File::open(file).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    inspect_from(&mut f, len, file)
}

/// [`inspect`] over `len` bytes of `f` (a file, or an archive member read
/// into memory); errors name `file`.
fn inspect_from<R: Read + Seek>(f: &mut R, len: u64, file: &Path) -> Result<ElfInfo> {
    let io_err = |source| ElfError::Io { file: file.to_path_buf(), source };
    let mut head = Vec::with_capacity(64);
    f.take(64).read_to_end(&mut head).map_err(io_err)?;
    let truncated = |what, needed| ElfError::Truncated { file: file.to_path_buf(), what, needed, len };
    let malformed = |what: String| ElfError::Malformed { file: file.to_path_buf(), what };
    let magic = b"\x7fELF";
    if head.len() < 4 {
        return Err(if magic.starts_with(&head) && !head.is_empty() { truncated("the ELF magic", 4) } else { ElfError::NotElf { file: file.into() } });
    }
    if &head[..4] != magic {
        return Err(ElfError::NotElf { file: file.into() });
    }
    if head.len() < 16 {
        return Err(truncated("e_ident", 16));
    }
    let class = match head[4] {
        1 => Class::Elf32,
        2 => Class::Elf64,
        c => return Err(malformed(format!("EI_CLASS {c} (1 = 32-bit, 2 = 64-bit)"))),
    };
    let endian = match head[5] {
        1 => Endian::Little,
        2 => Endian::Big,
        d => return Err(malformed(format!("EI_DATA {d} (1 = LSB, 2 = MSB)"))),
    };
    if head[6] != 1 {
        return Err(malformed(format!("EI_VERSION {} (must be 1)", head[6])));
    }
    let ehsize: usize = if class == Class::Elf64 { 64 } else { 52 };
    if head.len() < ehsize {
        return Err(truncated("the ELF header", ehsize as u64));
    }
    let u16_at = |b: &[u8], o: usize| {
        let v = [b[o], b[o + 1]];
        if endian == Endian::Little {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        }
    };
    let u32_at = |b: &[u8], o: usize| {
        let v = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if endian == Endian::Little {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    };
    let u64_at = |b: &[u8], o: usize| {
        let v: [u8; 8] = b[o..o + 8].try_into().expect("8 bytes");
        if endian == Endian::Little {
            u64::from_le_bytes(v)
        } else {
            u64::from_be_bytes(v)
        }
    };
    let (e_type, machine, version) = (u16_at(&head, 16), u16_at(&head, 18), u32_at(&head, 20));
    if version != 1 {
        return Err(malformed(format!("e_version {version} (must be 1)")));
    }
    // Offsets of e_phoff, e_flags, e_ehsize, e_phentsize, e_phnum by class.
    let (phoff, flags, eh, phentsize, phnum) = match class {
        Class::Elf32 => (u64::from(u32_at(&head, 28)), u32_at(&head, 36), u16_at(&head, 40), u16_at(&head, 42), u16_at(&head, 44)),
        Class::Elf64 => (u64_at(&head, 32), u32_at(&head, 48), u16_at(&head, 52), u16_at(&head, 54), u16_at(&head, 56)),
    };
    if usize::from(eh) != ehsize {
        return Err(malformed(format!("e_ehsize {eh} (a {ehsize}-byte header is expected for this class)")));
    }
    let want_phent: u16 = if class == Class::Elf64 { 56 } else { 32 };
    let mut has_interpreter = false;
    if phnum > 0 {
        if phentsize != want_phent {
            return Err(malformed(format!("e_phentsize {phentsize} (expected {want_phent})")));
        }
        if phnum == 0xffff {
            return Err(malformed("e_phnum is PN_XNUM (extended numbering is not supported)".into()));
        }
        let table = u64::from(phnum) * u64::from(phentsize);
        let end = phoff.checked_add(table).ok_or_else(|| malformed(format!("e_phoff {phoff:#x} overflows")))?;
        if end > len {
            return Err(truncated("the program header table", end));
        }
        let mut buf = vec![0u8; table as usize];
        f.seek(SeekFrom::Start(phoff)).map_err(io_err)?;
        f.read_exact(&mut buf).map_err(io_err)?;
        has_interpreter = buf.chunks_exact(usize::from(phentsize)).any(|ph| u32_at(ph, 0) == PT_INTERP);
    }
    Ok(ElfInfo { class, endian, e_type, machine, flags, os_abi: head[7], has_interpreter })
}

/// Checks that the relocatable object `bytes` (an archive member, named
/// `file` in errors) is built for `abi`: class, byte order and machine as
/// for [`check_lib`], and `e_type` `ET_REL` — what a static model library
/// holds (MLC's Android build links its system-lib objects into the app).
pub fn check_object(bytes: &[u8], file: &Path, abi: Abi) -> Result<ElfInfo> {
    let info = inspect_from(&mut io::Cursor::new(bytes), bytes.len() as u64, file)?;
    check_machine(&info, file, abi)?;
    if info.e_type != ET_REL {
        return Err(ElfError::NotObject { file: file.into(), abi, found: type_name(info.e_type) });
    }
    Ok(info)
}

fn check_machine(info: &ElfInfo, file: &Path, abi: Abi) -> Result<()> {
    if info.class != abi.class() || info.endian != Endian::Little || info.machine != abi.machine() {
        return Err(ElfError::WrongAbi {
            file: file.into(),
            expected: abi,
            needs: describe(abi.class(), Endian::Little, abi.machine()),
            found: describe(info.class, info.endian, info.machine),
        });
    }
    Ok(())
}

/// Checks that `file` is a shared library loadable on `abi` (see the module
/// docs for the rules); returns its header on success.
pub fn check_lib(file: &Path, abi: Abi) -> Result<ElfInfo> {
    let info = inspect(file)?;
    if info.class != abi.class() || info.endian != Endian::Little || info.machine != abi.machine() {
        return Err(ElfError::WrongAbi {
            file: file.into(),
            expected: abi,
            needs: describe(abi.class(), Endian::Little, abi.machine()),
            found: describe(info.class, info.endian, info.machine),
        });
    }
    if info.e_type != ET_DYN {
        return Err(ElfError::NotSharedObject { file: file.into(), abi, found: type_name(info.e_type) });
    }
    if info.has_interpreter {
        return Err(ElfError::Executable { file: file.into() });
    }
    if abi == Abi::ArmeabiV7a {
        let why = if info.flags & EF_ARM_EABIMASK != EF_ARM_EABI_VER5 {
            Some("ARM EABI version is not 5 (a legacy, non-EABI or non-Android build)")
        } else if info.flags & EF_ARM_ABI_FLOAT_HARD != 0 {
            Some("hard-float calling convention (a Linux armhf build)")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ElfError::WrongArmAbi { file: file.into(), flags: info.flags, why });
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const C_SOURCE: &str = "int avac_answer(void) { return 42; }\nint main(void) { return avac_answer(); }\n";

    /// Compiles `C_SOURCE` with `cc` and `args`, failing loudly (never skipping)
    /// when the compiler is missing.
    fn compile(dir: &Path, cc: &str, package: &str, args: &[&str], out: &str) -> PathBuf {
        let src = dir.join("answer.c");
        std::fs::write(&src, C_SOURCE).unwrap();
        let o = dir.join(out);
        let run = Command::new(cc).args(args).arg("-o").arg(&o).arg(&src).output();
        let run = run.unwrap_or_else(|e| panic!("{cc} could not be run ({e}): install the Debian package `{package}`"));
        assert!(run.status.success(), "{cc} {args:?} failed: {}", String::from_utf8_lossy(&run.stderr));
        o
    }

    fn host_cc(dir: &Path, args: &[&str], out: &str) -> PathBuf {
        compile(dir, "cc", "gcc", args, out)
    }

    fn aarch64_cc(dir: &Path, args: &[&str], out: &str) -> PathBuf {
        compile(dir, "aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu", args, out)
    }

    #[test]
    fn abi_names_round_trip() {
        for abi in Abi::ALL {
            assert_eq!(abi.name().parse::<Abi>().unwrap(), abi);
            assert_eq!(abi.to_string(), abi.name());
        }
        let e = "arm64".parse::<Abi>().unwrap_err();
        assert_eq!(e.to_string(), "unknown Android ABI \"arm64\" (expected one of arm64-v8a, armeabi-v7a, x86_64, x86)");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn host_shared_object_is_x86_64_only() {
        let dir = tempfile::tempdir().unwrap();
        let so = host_cc(dir.path(), &["-shared", "-fPIC"], "libanswer.so");
        let info = check_lib(&so, Abi::X86_64).unwrap();
        assert_eq!((info.class, info.endian, info.machine, info.e_type, info.has_interpreter), (Class::Elf64, Endian::Little, EM_X86_64, ET_DYN, false));
        let e = check_lib(&so, Abi::Arm64V8a).unwrap_err();
        let want = format!(
            "{}: built for ELFCLASS64 little-endian x86-64 (EM_X86_64), but ABI arm64-v8a needs ELFCLASS64 little-endian AArch64 (EM_AARCH64)",
            so.display()
        );
        assert_eq!(e.to_string(), want);
        for abi in [Abi::ArmeabiV7a, Abi::X86] {
            assert!(matches!(check_lib(&so, abi), Err(ElfError::WrongAbi { expected, .. }) if expected == abi));
        }
        // Executables are refused: PIE (ET_DYN with PT_INTERP, gcc's default) and not.
        let pie = host_cc(dir.path(), &["-fPIE", "-pie"], "answer-pie");
        assert!(matches!(check_lib(&pie, Abi::X86_64), Err(ElfError::Executable { .. })));
        let exe = host_cc(dir.path(), &["-no-pie"], "answer");
        let e = check_lib(&exe, Abi::X86_64).unwrap_err();
        assert!(e.to_string().contains("an executable (ET_EXEC), not a shared object"), "{e}");
        let obj = host_cc(dir.path(), &["-c", "-fPIC"], "answer.o");
        assert!(matches!(check_lib(&obj, Abi::X86_64), Err(ElfError::NotSharedObject { .. })));
    }

    #[test]
    fn aarch64_shared_object_is_arm64_v8a_only() {
        let dir = tempfile::tempdir().unwrap();
        let so = aarch64_cc(dir.path(), &["-shared", "-fPIC"], "libanswer.so");
        let info = check_lib(&so, Abi::Arm64V8a).unwrap();
        assert_eq!((info.class, info.machine, info.e_type), (Class::Elf64, EM_AARCH64, ET_DYN));
        let e = check_lib(&so, Abi::X86_64).unwrap_err();
        let want = format!(
            "{}: built for ELFCLASS64 little-endian AArch64 (EM_AARCH64), but ABI x86_64 needs ELFCLASS64 little-endian x86-64 (EM_X86_64)",
            so.display()
        );
        assert_eq!(e.to_string(), want);
        assert!(matches!(check_lib(&so, Abi::ArmeabiV7a), Err(ElfError::WrongAbi { .. })));
        let pie = aarch64_cc(dir.path(), &["-fPIE", "-pie"], "answer-pie");
        assert!(matches!(check_lib(&pie, Abi::Arm64V8a), Err(ElfError::Executable { .. })));
    }

    /// A minimal ELF header (and optional program headers) in the given layout.
    fn fake(class: u8, data: u8, e_type: u16, machine: u16, flags: u32, ptypes: &[u32]) -> Vec<u8> {
        let be = data == 2;
        let (h16, h32) = (|v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() }, |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() });
        let wide = class == 2;
        let (ehsize, phent) = if wide { (64u16, 56u16) } else { (52, 32) };
        let mut b = vec![0x7f, b'E', b'L', b'F', class, data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend(h16(e_type));
        b.extend(h16(machine));
        b.extend(h32(1));
        let off = |v: u32| {
            if wide {
                if be {
                    u64::from(v).to_be_bytes().to_vec()
                } else {
                    u64::from(v).to_le_bytes().to_vec()
                }
            } else {
                h32(v).to_vec()
            }
        };
        b.extend(off(0)); // e_entry
        b.extend(off(if ptypes.is_empty() { 0 } else { u32::from(ehsize) })); // e_phoff
        b.extend(off(0)); // e_shoff
        b.extend(h32(flags));
        b.extend(h16(ehsize));
        b.extend(h16(phent));
        b.extend(h16(ptypes.len() as u16));
        b.extend([0u8; 6]); // e_shentsize, e_shnum, e_shstrndx
        assert_eq!(b.len(), usize::from(ehsize));
        for &t in ptypes {
            let mut ph = vec![0u8; usize::from(phent)];
            ph[..4].copy_from_slice(&h32(t));
            b.extend(ph);
        }
        b
    }

    fn check_bytes(bytes: &[u8], abi: Abi) -> Result<ElfInfo> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("libx.so");
        std::fs::write(&p, bytes).unwrap();
        check_lib(&p, abi)
    }

    #[test]
    fn handcrafted_headers_follow_the_rules() {
        const ARM_SOFT: u32 = 0x0500_0200;
        for abi in Abi::ALL {
            let class = if abi.class() == Class::Elf64 { 2 } else { 1 };
            let flags = if abi == Abi::ArmeabiV7a { ARM_SOFT } else { 0 };
            let info = check_bytes(&fake(class, 1, ET_DYN, abi.machine(), flags, &[1, 2]), abi).unwrap();
            assert!(!info.has_interpreter, "{abi}");
            // Same machine, other class: the "is 64-bit instead of 32-bit" case.
            let e = check_bytes(&fake(3 - class, 1, ET_DYN, abi.machine(), flags, &[]), abi).unwrap_err();
            assert!(matches!(e, ElfError::WrongAbi { .. }), "{abi}: {e}");
            let e = check_bytes(&fake(class, 2, ET_DYN, abi.machine(), flags, &[]), abi).unwrap_err();
            assert!(e.to_string().contains("built for ") && e.to_string().contains("big-endian"), "{e}");
            let e = check_bytes(&fake(class, 1, 2, abi.machine(), flags, &[]), abi).unwrap_err();
            assert!(matches!(e, ElfError::NotSharedObject { .. }), "{e}");
            let e = check_bytes(&fake(class, 1, ET_DYN, abi.machine(), flags, &[1, PT_INTERP]), abi).unwrap_err();
            assert!(matches!(e, ElfError::Executable { .. }), "{e}");
        }
        let hard = check_bytes(&fake(1, 1, ET_DYN, EM_ARM, 0x0500_0400, &[]), Abi::ArmeabiV7a).unwrap_err();
        assert!(hard.to_string().contains("hard-float"), "{hard}");
        let oabi = check_bytes(&fake(1, 1, ET_DYN, EM_ARM, 0, &[]), Abi::ArmeabiV7a).unwrap_err();
        assert!(matches!(oabi, ElfError::WrongArmAbi { .. }), "{oabi}");
        let riscv = check_bytes(&fake(2, 1, ET_DYN, 243, 0, &[]), Abi::Arm64V8a).unwrap_err();
        assert!(riscv.to_string().contains("RISC-V (EM_RISCV)"), "{riscv}");
    }

    #[test]
    fn non_elf_truncated_and_malformed_files_are_refused() {
        let good = fake(2, 1, ET_DYN, EM_AARCH64, 0, &[1, 1]);
        let check = |b: &[u8]| check_bytes(b, Abi::Arm64V8a).unwrap_err();
        for not_elf in [&b""[..], b"hello world, this is text", b"PK\x03\x04", b"\x7fEL!xxxxxxxxxxxxxxxxxxxx"] {
            assert!(matches!(check(not_elf), ElfError::NotElf { .. }), "{not_elf:?}");
        }
        for cut in [3, 10, 16, 40, 63, 64 + 56 + 10] {
            let e = check(&good[..cut]);
            assert!(matches!(e, ElfError::Truncated { .. }), "cut at {cut}: {e}");
            assert!(e.to_string().contains("libx.so: truncated ELF file"), "{e}");
        }
        let edit = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            check(&b)
        };
        for (at, v, needle) in [
            (4, &[3u8][..], "EI_CLASS 3"),
            (5, &[0], "EI_DATA 0"),
            (6, &[2], "EI_VERSION 2"),
            (20, &[2, 0, 0, 0], "e_version 2"),
            (52, &[63, 0], "e_ehsize 63"),
            (54, &[55, 0], "e_phentsize 55"),
            (56, &[0xff, 0xff], "PN_XNUM"),
            (32, &[0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], "overflows"),
        ] {
            let e = edit(at, v);
            assert!(matches!(e, ElfError::Malformed { .. }) && e.to_string().contains(needle), "{needle}: {e}");
        }
        // A program header table that points past the end of the file.
        let e = edit(32, &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert!(e.to_string().contains("the program header table needs bytes up to 368"), "{e}");
        let e = check_lib(Path::new("/nonexistent/libx.so"), Abi::X86).unwrap_err();
        assert!(matches!(e, ElfError::Io { .. }) && e.to_string().starts_with("/nonexistent/libx.so: "), "{e}");
    }
}
